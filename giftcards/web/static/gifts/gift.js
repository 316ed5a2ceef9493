// The gift page: count down to a scheduled gift, and claim an open one.
"use strict";
(function () {
  const main = document.getElementById("gift");
  if (!main) return;

  const opensAt = document.getElementById("opens-at");
  if (opensAt) opensAt.textContent = new Date(opensAt.dateTime).toLocaleString(document.documentElement.lang);

  const countdown = document.getElementById("countdown");
  if (countdown) {
    const due = Date.now() + Number(countdown.dataset.seconds) * 1000;
    const pad = (n) => String(n).padStart(2, "0");
    const tick = () => {
      const left = Math.max(0, Math.round((due - Date.now()) / 1000));
      const days = Math.floor(left / 86400);
      const clock = `${pad(Math.floor(left % 86400 / 3600))}:${pad(Math.floor(left % 3600 / 60))}:${pad(left % 60)}`;
      countdown.textContent = days > 0 ? `${days}d ${clock}` : clock;
      if (left === 0) { window.location.reload(); return; }
      window.setTimeout(tick, 1000);
    };
    tick();
  }

  const form = document.getElementById("claim-form");
  if (!form) return;
  const error = document.getElementById("error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = document.getElementById("claim");
    button.disabled = true;
    error.hidden = true;
    try {
      const response = await fetch(main.dataset.claimUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ owner_id: document.getElementById("owner-id").value.trim() }),
      });
      const body = await response.json();
      if (response.ok) {
        window.location.assign(new URL(body.card_url).pathname);
        return;
      }
      error.textContent = body.detail || body.title;
      error.hidden = false;
    } catch (e) {
      error.textContent = String(e);
      error.hidden = false;
    }
    button.disabled = false;
  });
})();
