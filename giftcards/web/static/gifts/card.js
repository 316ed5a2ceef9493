// The card page: a QR that rotates (a freshly signed payload every 20 s) and the typed code on request.
"use strict";
(function () {
  const main = document.getElementById("card-page");
  const qr = document.getElementById("qr");
  if (!main || !qr) return;
  let timer = null;

  async function refresh() {
    window.clearTimeout(timer);
    try {
      const response = await fetch(main.dataset.qrUrl, { cache: "no-store" });
      const body = await response.json();
      if (!response.ok) {
        qr.hidden = true;
        return; // used up, expired or passed on: stop showing a code
      }
      qr.src = body.image;
      qr.dataset.payload = body.payload;
      qr.dataset.step = String(body.step);
      qr.hidden = false;
      timer = window.setTimeout(refresh, body.refresh_after_seconds * 1000);
    } catch (e) {
      timer = window.setTimeout(refresh, 5000);
    }
  }
  document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
  refresh();

  const button = document.getElementById("show-code");
  const code = document.getElementById("code");
  button.addEventListener("click", async () => {
    const response = await fetch(main.dataset.codeUrl, { cache: "no-store" });
    const body = await response.json();
    code.textContent = response.ok ? body.code : (body.detail || body.title);
    code.hidden = false;
    button.hidden = true;
  });
})();
