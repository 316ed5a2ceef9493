// The wallet page: what can be spent, gifts waiting, the cards held (grouped, paged), gifts sent, and what
// one does with them. Everything comes from the wallet API with the link's token as the Bearer credential;
// every text from the server goes into the page as a text node, never as markup.
"use strict";
(function () {
  const main = document.getElementById("wallet");
  if (!main) return;
  const T = JSON.parse(document.getElementById("wallet-texts").textContent);
  const token = main.dataset.token;
  const $ = (id) => document.getElementById(id);
  const view = { status: "", cursor: null, generation: 0, wechat: false, sending: null, sentAfter: null };

  class Expired extends Error {}

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function button(label, className, onClick) {
    const node = el("button", className, label);
    node.type = "button";
    node.addEventListener("click", (event) => act(event.currentTarget, () => onClick(event.currentTarget)));
    return node;
  }

  function picture(url, alt) {
    const img = el("img", "thumb");
    img.alt = alt;
    img.width = 96;
    img.height = 128;
    img.loading = "lazy";
    if (url) img.src = url;
    return img;
  }

  function newKey() {
    if (window.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
    return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // One call of the wallet API. A POST carries an Idempotency-Key: the same key (a retried send) gets the
  // first answer again instead of a second gift.
  async function api(method, path, body, key) {
    const headers = { Authorization: "Bearer " + token, Accept: "application/json" };
    const init = { method, headers, cache: "no-store" };
    if (method === "POST") {
      headers["Idempotency-Key"] = key || newKey();
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body || {});
    }
    const response = await fetch(path, init);
    const data = await response.json().catch(() => ({}));
    if (response.status === 401) {
      showExpired();
      throw new Expired(T.expired);
    }
    if (!response.ok) throw new Error(data.detail || data.title || String(response.status));
    return data;
  }

  // Run an action from a button: disabled while it runs (no double taps), errors shown in one place.
  async function act(control, work) {
    if (control) control.disabled = true;
    try {
      await work();
    } catch (error) {
      report(error);
    } finally {
      if (control && !main.classList.contains("is-expired")) control.disabled = false;
    }
  }

  function showExpired() {
    $("expired").hidden = false;
    main.classList.add("is-expired");
    for (const control of main.querySelectorAll("button, input, textarea")) control.disabled = true;
  }

  function report(error) {
    if (error instanceof Expired) return;
    $("error").textContent = T.error + " " + error.message;
    $("error").hidden = false;
    $("ok").hidden = true;
  }

  function say(text) {
    $("ok").textContent = text;
    $("ok").hidden = false;
    $("error").hidden = true;
  }

  const day = (iso) => (iso ? iso.slice(0, 10) : null);
  const when = (iso) => new Date(iso).toLocaleString(document.documentElement.lang);

  // -- what can be spent ----------------------------------------------------------------------------

  async function loadOverview() {
    const data = await api("GET", "/v1/wallet");
    view.wechat = data.wechat;
    const list = $("totals");
    list.replaceChildren();
    if (data.totals.length === 0) list.append(el("li", "chip empty", T.nothing_to_spend));
    for (const total of data.totals) {
      const chip = el("li", "chip", total.balance_text);
      chip.dataset.currency = total.currency;
      list.append(chip);
    }
    for (const node of main.querySelectorAll("[data-count]")) {
      node.textContent = String(data.counts[node.dataset.count]);
    }
  }

  // -- the cards held ---------------------------------------------------------------------------------

  function statusLabel(card) {
    if (card.status === "active") return card.state === "active" ? T.active : T[card.state];
    return card.status === "expired" ? T.expired_tab : T[card.status];
  }

  function cardItem(card) {
    const item = el("li", "item card");
    item.dataset.cardId = card.id;
    item.dataset.status = card.status;
    const info = el("div", "info");
    const head = el("p", "figure");
    head.append(el("span", "balance", card.balance_text), el("span", "badge " + card.status, statusLabel(card)));
    info.append(head);
    info.append(el("p", "expiry", card.expires_at ? T.expires + " " + day(card.expires_at) : T.no_expiry));
    if (card.from_name) info.append(el("p", "from", T.from + " " + card.from_name));
    const actions = el("div", "actions");
    actions.append(button(card.can_pay ? T.open : T.details, "primary open", () => openCard(card, false)));
    if (card.can_send) actions.append(button(T.send_gift, "send", async () => startSend(card)));
    if (view.wechat && card.can_pay) actions.append(button(T.add_wechat, "wechat", () => openCard(card, true)));
    info.append(actions);
    item.append(picture(card.thumbnail_url, card.design ? card.design.name : card.balance_text), info);
    return item;
  }

  async function loadCards(reset) {
    const generation = reset ? ++view.generation : view.generation;
    const params = new URLSearchParams({ limit: "20" });
    if (view.status) params.set("status", view.status);
    if (!reset && view.cursor) params.set("cursor", view.cursor);
    const page = await api("GET", "/v1/wallet/cards?" + params);
    if (generation !== view.generation) return; // another tab was chosen meanwhile
    if (reset) $("cards").replaceChildren();
    for (const card of page.data) $("cards").append(cardItem(card));
    view.cursor = page.next_cursor;
    $("more-cards").hidden = !page.has_more;
    $("no-cards").hidden = $("cards").children.length > 0;
  }

  async function openCard(card, wechat) {
    const link = await api("POST", `/v1/wallet/cards/${encodeURIComponent(card.id)}/open`);
    window.location.assign(new URL(wechat ? link.wechat_url : link.url).pathname);
  }

  // -- gifts waiting for the owner --------------------------------------------------------------------

  function receivedItem(gift) {
    const item = el("li", "item gift received");
    item.dataset.giftId = gift.id;
    item.dataset.state = gift.state;
    const info = el("div", "info");
    info.append(el("p", "from", T.from + " " + gift.sender_name));
    if (gift.state === "waiting") {
      info.append(el("p", "figure balance", gift.amount_text));
      if (gift.message) info.append(el("p", "message", gift.message));
      info.append(el("p", "hint", T.claim_by + " " + when(gift.expires_at)));
      const actions = el("div", "actions");
      actions.append(button(T.claim, "primary claim", () => claim(gift)));
      info.append(actions);
    } else {
      info.append(el("p", "hint", T.opens_at + " " + when(gift.opens_at)));
    }
    item.append(picture(gift.thumbnail_url, gift.sender_name), info);
    return item;
  }

  async function loadReceived() {
    const page = await api("GET", "/v1/wallet/gifts/received?limit=50");
    $("received").replaceChildren(...page.data.map(receivedItem));
    $("received-section").hidden = page.data.length === 0;
  }

  async function claim(gift) {
    await api("POST", `/v1/wallet/gifts/${encodeURIComponent(gift.id)}/claim`);
    say(T.claimed_notice);
    await refresh();
  }

  // -- gifts the owner sent ---------------------------------------------------------------------------

  function sentItem(gift) {
    const item = el("li", "item gift sent");
    item.dataset.giftId = gift.id;
    item.dataset.state = gift.state;
    const info = el("div", "info");
    const head = el("p", "figure");
    head.append(el("span", "balance", gift.amount_text), el("span", "badge state", T["gift_" + gift.state]));
    info.append(head, el("p", "to", T.to + " " + gift.recipient_name), el("p", "hint", day(gift.created_at)));
    const actions = el("div", "actions");
    if (gift.can_share) actions.append(button(T.share, "share", () => share(gift)));
    if (gift.can_revoke) actions.append(button(T.revoke, "revoke", (control) => revoke(gift, control)));
    info.append(actions);
    item.append(picture(gift.thumbnail_url, gift.recipient_name), info);
    return item;
  }

  async function loadSent(reset) {
    const params = new URLSearchParams({ limit: "20" });
    if (!reset && view.sentAfter) params.set("starting_after", view.sentAfter);
    const page = await api("GET", "/v1/wallet/gifts/sent?" + params);
    if (reset) {
      $("sent").replaceChildren();
      view.sentAfter = null;
    }
    for (const gift of page.data) $("sent").append(sentItem(gift));
    if (page.data.length) view.sentAfter = page.data[page.data.length - 1].id;
    $("more-sent").hidden = !page.has_more;
    $("no-sent").hidden = $("sent").children.length > 0;
  }

  async function revoke(gift, control) {
    if (control.dataset.armed !== "1") { // a second tap confirms: a gift is not withdrawn by a slip
      control.dataset.armed = "1";
      control.textContent = T.revoke_confirm;
      window.setTimeout(() => { control.dataset.armed = ""; control.textContent = T.revoke; }, 5000);
      return;
    }
    await api("POST", `/v1/wallet/gifts/${encodeURIComponent(gift.id)}/revoke`);
    await refresh();
  }

  async function share(gift) {
    const link = await api("GET", `/v1/wallet/gifts/${encodeURIComponent(gift.id)}/link`);
    showLink(link.url);
  }

  function showLink(url) {
    $("share-link").value = url;
    $("share-copy").textContent = T.copy;
    $("share-panel").hidden = false;
    $("share-panel").scrollIntoView({ block: "nearest" });
  }

  // -- passing a card on ------------------------------------------------------------------------------

  function startSend(card) {
    view.sending = { card, key: newKey() }; // one key per gift being composed: a retry cannot send twice
    $("send-card").textContent = card.balance_text;
    if (!$("sender-name").value) $("sender-name").value = main.dataset.sender || "";
    $("share-panel").hidden = true;
    $("send-panel").hidden = false;
    $("send-panel").scrollIntoView({ block: "nearest" });
    $("recipient-name").focus();
  }

  $("send-form").addEventListener("submit", (event) => {
    event.preventDefault();
    if (!view.sending) return;
    act($("send-submit"), async () => {
      const body = {
        recipient_name: $("recipient-name").value.trim(),
        sender_name: $("sender-name").value.trim(),
      };
      const message = $("gift-message").value.trim();
      if (message) body.message = message;
      const { card, key } = view.sending;
      const made = await api("POST", `/v1/wallet/cards/${encodeURIComponent(card.id)}/gifts`, body, key);
      view.sending = null;
      $("send-form").reset();
      $("send-panel").hidden = true;
      showLink(made.link);
      await refresh();
    });
  });
  $("send-cancel").addEventListener("click", () => { view.sending = null; $("send-panel").hidden = true; });
  $("share-close").addEventListener("click", () => { $("share-panel").hidden = true; });
  $("share-copy").addEventListener("click", async () => {
    const field = $("share-link");
    field.select();
    try {
      await navigator.clipboard.writeText(field.value);
      $("share-copy").textContent = T.copied;
    } catch (e) {
      document.execCommand("copy"); // older WebViews
    }
  });

  // -- putting it together ----------------------------------------------------------------------------

  for (const tab of $("tabs").querySelectorAll("button")) {
    tab.addEventListener("click", () => {
      for (const other of $("tabs").querySelectorAll("button")) other.setAttribute("aria-pressed", String(other === tab));
      view.status = tab.dataset.status;
      act(null, () => loadCards(true));
    });
  }
  $("more-cards").addEventListener("click", (event) => act(event.currentTarget, () => loadCards(false)));
  $("more-sent").addEventListener("click", (event) => act(event.currentTarget, () => loadSent(false)));

  async function refresh() {
    await loadOverview(); // first: whether cards get an "add to WeChat" button
    await Promise.all([loadReceived(), loadCards(true), loadSent(true)]);
    main.dataset.loaded = String(Number(main.dataset.loaded || 0) + 1);
  }
  act(null, refresh);
})();
