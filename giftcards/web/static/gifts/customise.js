// The customise page: choose a design and an amount, write a message, add a photo, preview, send.
"use strict";
(function () {
  const main = document.getElementById("customise");
  const form = document.getElementById("compose");
  if (!main || !form) return;
  const base = main.dataset.base;
  const error = document.getElementById("error");
  const message = document.getElementById("message");
  let photoId = null;

  function showError(text) { error.textContent = text; error.hidden = false; }
  async function problem(response) {
    try { const body = await response.json(); return body.detail || body.title; } catch (e) { return response.statusText; }
  }
  function chosenDesign() { return form.querySelector("input[name=design]:checked").value; }
  function amountBox() { return form.querySelector(`.amounts[data-design="${chosenDesign()}"]`); }

  function syncAmounts() {
    for (const box of form.querySelectorAll(".amounts")) box.hidden = box.dataset.design !== chosenDesign();
    const box = amountBox();
    const free = box.querySelector(".free-amount");
    if (free) free.hidden = box.querySelector("select").value !== "free";
  }
  form.addEventListener("change", syncAmounts);
  syncAmounts();
  message.addEventListener("input", () => {
    document.getElementById("count").textContent = `${Array.from(message.value).length}/200`;
  });

  function amount() {
    const box = amountBox();
    const choice = box.querySelector("select").value;
    if (choice !== "free") return Number(choice);
    return Math.round(Number(box.querySelector(".free-amount").value) * 100);
  }
  function composed() {
    const body = { design_id: chosenDesign(), amount: amount(), message: message.value };
    for (const name of ["sender_name", "recipient_name"]) {
      const value = document.getElementById(name).value.trim();
      if (value) body[name] = value;
    }
    if (photoId) body.photo_id = photoId;
    const opens = document.getElementById("opens_at").value;
    if (opens) body.opens_at = new Date(opens).toISOString();
    return body;
  }
  async function post(path, body) {
    return fetch(base + path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  }

  document.getElementById("photo").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    const status = document.getElementById("photo-status");
    photoId = null;
    error.hidden = true;
    if (!file) { status.hidden = true; return; }
    const response = await fetch(base + "/photos", { method: "POST", headers: { "Content-Type": file.type || "application/octet-stream" }, body: file });
    if (response.ok) {
      const image = await response.json();
      photoId = image.id;
      status.textContent = `✓ ${image.width}×${image.height}`;
      status.hidden = false;
    } else {
      status.hidden = true;
      event.target.value = "";
      showError(await problem(response));
    }
  });

  document.getElementById("preview").addEventListener("click", async () => {
    error.hidden = true;
    const response = await post("/preview", composed());
    if (!response.ok) { showError(await problem(response)); return; }
    const image = document.getElementById("preview-image");
    if (image.src) URL.revokeObjectURL(image.src);
    image.src = URL.createObjectURL(await response.blob());
    image.hidden = false;
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const send = document.getElementById("send");
    send.disabled = true;
    const response = await post("/send", composed());
    if (!response.ok) { send.disabled = false; showError(await problem(response)); return; }
    const gift = await response.json();
    form.hidden = true;
    document.getElementById("preview-image").hidden = true;
    document.getElementById("link").value = gift.link;
    document.getElementById("sent-image").src = new URL(gift.image_url).pathname;
    document.getElementById("sent").hidden = false;
  });
})();
