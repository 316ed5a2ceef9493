/* The store terminal page: enrol, scan or type, redeem, refund. Talks to the JSON API only.
 *
 * Money is integers in fen; it is shown as yuan with two decimals and sent as integers. Every action
 * gets its Idempotency-Key when its confirm screen opens, so a double tap or a retry after a lost
 * answer reuses it and is never charged twice. The terminal token lives in localStorage and travels
 * only in the Authorization header, never in a URL.
 */
"use strict";

/* Card codes: a port of giftcards/value/codes.py (Luhn mod 32 over the alphabet without 0/O/1/I). */
const GiftcardCodes = (() => {
  const ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
  const N = ALPHABET.length;
  const BODY_LENGTH = 19;
  const CODE_LENGTH = BODY_LENGTH + 1;

  function luhnSum(symbols, doubleRightmost) {
    let total = 0;
    let double = doubleRightmost;
    for (let i = symbols.length - 1; i >= 0; i--) {
      const addend = ALPHABET.indexOf(symbols[i]) * (double ? 2 : 1);
      total += Math.floor(addend / N) + (addend % N);
      double = !double;
    }
    return total;
  }

  function checkSymbol(body) {
    if (!body || [...body].some((c) => ALPHABET.indexOf(c) < 0)) {
      throw new Error("the body must be non-empty and use only the code alphabet");
    }
    return ALPHABET[(((-luhnSum(body, true)) % N) + N) % N];
  }

  /* What a person typed, upper-cased without spaces and hyphens (as normalize_code does). */
  function canonical(raw) {
    return raw.toUpperCase().replace(/[ -]/g, "");
  }

  /* "empty" | "partial" | "bad_char" | "too_long" | "typo" | "ok", with the canonical code. */
  function status(raw) {
    if (!/^[\x00-\x7f]*$/.test(raw)) return { state: "bad_char", code: "" };
    const code = canonical(raw);
    if (!code) return { state: "empty", code };
    if ([...code].some((c) => ALPHABET.indexOf(c) < 0)) return { state: "bad_char", code };
    if (code.length < CODE_LENGTH) return { state: "partial", code };
    if (code.length > CODE_LENGTH) return { state: "too_long", code };
    return { state: luhnSum(code, false) % N === 0 ? "ok" : "typo", code };
  }

  function isValid(raw) {
    return status(raw).state === "ok";
  }

  return { ALPHABET, CODE_LENGTH, checkSymbol, status, isValid };
})();
window.GiftcardCodes = GiftcardCodes;

(() => {
  const TOKEN_KEY = "giftcards.terminal.token";
  const QR_MAGIC = /^GC[12]/i; // signed payloads, version 1 or 2 (giftcards/qr/signing.py); a code may start GC2
  const QUICK_AMOUNTS = [5000, 10000, 20000, 50000];
  const t = JSON.parse(document.getElementById("messages").textContent);
  const lang = document.body.dataset.lang;
  const $ = (id) => document.getElementById(id);

  const state = {
    terminal: null, // GET /v1/terminal
    ref: null, // { code } or { qr_payload } of the card on screen
    card: null, // the card as looked up
    pending: null, // the action on the confirm screen: { path, body, key, done }
    unsettled: null, // an action whose answer was lost: asking for it again reuses its key
    busy: false,
    camera: null, // { stream, timer }
  };

  // -- small helpers ----------------------------------------------------------------------------------

  function fmt(key, vars) {
    let text = t[key] || key;
    for (const [name, value] of Object.entries(vars || {})) text = text.split("{" + name + "}").join(value);
    return text;
  }

  function money(fen, currency) {
    const sign = fen < 0 ? "-" : "";
    const abs = Math.abs(fen);
    const text = Math.floor(abs / 100) + "." + String(abs % 100).padStart(2, "0");
    const symbol = currency === "CNY" || !currency ? "¥" : currency + " ";
    return sign + symbol + text;
  }

  /* "12.5" -> 1250; null unless a positive amount with at most two decimals. */
  function parseAmount(text) {
    const match = /^\s*(\d{1,7})(?:[.,](\d{0,2}))?\s*$/.exec(text);
    if (!match) return null;
    const fen = Number(match[1]) * 100 + Number((match[2] || "").padEnd(2, "0"));
    return fen > 0 ? fen : null;
  }

  function yuanText(fen) {
    return Math.floor(fen / 100) + "." + String(fen % 100).padStart(2, "0");
  }

  function newKey() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes); // crypto.randomUUID needs a secure context; this does not
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  function show(screen) {
    for (const section of document.querySelectorAll(".screen")) section.hidden = section.id !== "screen-" + screen;
    document.body.dataset.screen = screen;
    const focus = { enrol: "enrol-code", scan: "scan", card: "amount", confirm: "confirm", receipt: "next" }[screen];
    if (focus) $(focus).focus();
  }

  function notify(text, action) {
    $("notice").hidden = !text;
    $("notice-text").textContent = text || "";
    const button = $("notice-action");
    button.hidden = !action;
    button.onclick = null;
    if (action) {
      button.textContent = action.label;
      button.onclick = () => {
        notify("");
        action.run();
      };
    }
  }

  function problemText(body) {
    const code = (body && body.code) || "other";
    const vars = {
      code,
      balance: body && body.balance !== undefined ? money(body.balance, body.currency) : "",
      limit: body && body.limit !== undefined ? money(body.limit, state.card && state.card.currency) : "",
      seconds: (body && body.retry_after) || "60",
    };
    return t["err_" + code] ? fmt("err_" + code, vars) : fmt("err_other", vars);
  }

  // -- the API -------------------------------------------------------------------------------------------

  async function api(method, path, body, key) {
    const headers = { Accept: "application/json" };
    const token = localStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = "Bearer " + token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (key) headers["Idempotency-Key"] = key;
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
        credentials: "omit",
      });
    } catch (error) {
      return { ok: false, status: 0, body: { code: "network" } };
    }
    let data = {};
    try {
      data = await response.json();
    } catch (error) {
      data = {};
    }
    if (response.status === 401 && token) {
      forget();
      notify(fmt("err_unauthenticated"));
    }
    return { ok: response.ok, status: response.status, body: data };
  }

  function forget() {
    localStorage.removeItem(TOKEN_KEY);
    state.terminal = null;
    $("who").textContent = "";
    stopCamera();
    show("enrol");
  }

  // -- enrolment --------------------------------------------------------------------------------------

  async function enrol(event) {
    event.preventDefault();
    if (state.busy) return;
    state.busy = true;
    try {
      localStorage.removeItem(TOKEN_KEY);
      const result = await api("POST", "/v1/terminal/enroll", { code: $("enrol-code").value.trim() });
      if (!result.ok) {
        notify(problemText(result.body));
        return;
      }
      localStorage.setItem(TOKEN_KEY, result.body.token);
      $("enrol-code").value = "";
      notify("");
      await start();
    } finally {
      state.busy = false;
    }
  }

  async function start() {
    if (!localStorage.getItem(TOKEN_KEY)) {
      show("enrol");
      return;
    }
    const result = await api("GET", "/v1/terminal");
    if (!result.ok) {
      if (result.status !== 401) {
        notify(problemText(result.body));
        show("scan");
      }
      return;
    }
    state.terminal = result.body;
    $("who").textContent = `${result.body.label} · ${result.body.store.name} · ${fmt("role_" + result.body.role)}`;
    toScan();
  }

  // -- scanning and typing ------------------------------------------------------------------------------

  function looksLikeQr(text) {
    return QR_MAGIC.test(text) && text.length > GiftcardCodes.CODE_LENGTH + 4;
  }

  function codeHint() {
    const text = $("scan").value.trim();
    const hint = $("code-hint");
    hint.className = "hint";
    if (!text || looksLikeQr(text) || /^GC1/i.test(text)) {
      hint.textContent = "";
      return;
    }
    const { state: s, code } = GiftcardCodes.status(text);
    if (s === "ok") {
      hint.textContent = fmt("code_ok");
      hint.classList.add("ok");
    } else if (s === "partial") {
      hint.textContent = fmt("code_progress", { count: code.length });
    } else {
      hint.textContent = fmt(s === "bad_char" ? "code_bad_char" : "code_typo");
      hint.classList.add("bad");
    }
  }

  async function scanned(event) {
    if (event) event.preventDefault();
    const text = $("scan").value.trim();
    if (!text || state.busy) return;
    let ref;
    if (looksLikeQr(text)) {
      ref = { qr_payload: text };
    } else {
      const { state: s, code } = GiftcardCodes.status(text);
      if (s !== "ok") {
        codeHint(); // the typo is caught here, before any lookup
        return;
      }
      ref = { code };
    }
    state.busy = true;
    try {
      const result = await api("POST", "/v1/cards/lookup", ref);
      if (!result.ok) {
        if (result.status !== 401) notify(problemText(result.body));
        $("scan").select();
        return;
      }
      notify("");
      $("scan").value = "";
      codeHint();
      showCard(ref, result.body);
    } finally {
      state.busy = false;
    }
  }

  function showCard(ref, card) {
    state.ref = ref;
    state.card = card;
    $("card-last4").textContent = "···· " + card.code_last4;
    $("card-campaign").textContent = card.campaign || "";
    $("card-balance").textContent = money(card.balance, card.currency);
    $("card-currency").textContent = card.currency;
    $("card-expires").textContent = card.expires_at
      ? new Date(card.expires_at).toLocaleDateString(lang === "zh" ? "zh-CN" : "en-GB")
      : fmt("never");
    $("card-state").textContent = fmt("state_" + card.state);
    $("card-state").dataset.state = card.state;
    loadThumbnail(card.id);
    $("amount").value = "";
    $("amount-error").textContent = "";
    const quick = $("quick");
    quick.replaceChildren();
    const choices = QUICK_AMOUNTS.filter((fen) => fen < card.balance).map((fen) => [money(fen, card.currency), fen]);
    if (card.balance > 0) choices.push([fmt("full_balance") + " " + money(card.balance, card.currency), card.balance]);
    for (const [label, fen] of choices) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = label;
      button.dataset.amount = String(fen);
      button.addEventListener("click", () => {
        $("amount").value = yuanText(fen);
        $("amount-error").textContent = "";
      });
      quick.append(button);
    }
    $("block").hidden = !(state.terminal && state.terminal.role === "manager" && card.state === "active");
    show("card");
    if (card.state !== "active") notify(problemText({ code: "card_" + (card.state === "pending" ? "not_active" : card.state) }));
  }

  /* An <img> cannot send the bearer token, so the picture is fetched and shown from a blob: URL. */
  async function loadThumbnail(cardId) {
    const thumb = $("card-thumb");
    thumb.hidden = true;
    if (thumb.src) URL.revokeObjectURL(thumb.src);
    thumb.removeAttribute("src");
    try {
      const response = await fetch(`/v1/terminal/cards/${encodeURIComponent(cardId)}/thumbnail.png`, {
        headers: { Authorization: "Bearer " + localStorage.getItem(TOKEN_KEY) },
        credentials: "omit",
      });
      if (!response.ok || !state.card || state.card.id !== cardId) return;
      thumb.src = URL.createObjectURL(await response.blob());
      thumb.hidden = false;
    } catch (error) {
      /* no picture: the plain card face stays */
    }
  }

  // -- confirm, then act ------------------------------------------------------------------------------

  /* The key is made here, once per confirm screen: every click and retry below reuses it. */
  function openConfirm(text, path, body, done) {
    const lost = state.unsettled;
    const same = lost && lost.path === path && JSON.stringify(lost.body) === JSON.stringify(body);
    state.pending = { path, body, key: same ? lost.key : newKey(), done };
    $("confirm-text").textContent = text;
    $("confirm").disabled = false;
    $("confirm").textContent = fmt("confirm");
    show("confirm");
  }

  function askRedeem(amount, allowPartial) {
    const body = { ...state.ref, amount };
    if (allowPartial) body.allow_partial = true;
    const shown = allowPartial ? Math.min(amount, state.card.balance) : amount;
    openConfirm(
      fmt("confirm_take", { amount: money(shown, state.card.currency), last4: state.card.code_last4 }),
      "/v1/redemptions",
      body,
      (receipt) => showReceipt(fmt("receipt"), receipt.amount_taken, receipt),
    );
  }

  async function confirm() {
    const pending = state.pending;
    if (!pending || state.busy) return;
    state.busy = true;
    $("confirm").disabled = true;
    $("confirm").textContent = fmt("working");
    try {
      const result = await api("POST", pending.path, pending.body, pending.key);
      if (result.status === 0 || result.status >= 500) {
        state.unsettled = pending; // even after Cancel, the same action keeps this key
        notify(fmt("err_network")); // stay on the confirm screen; tapping again reuses the key
        $("confirm").disabled = false;
        $("confirm").textContent = fmt("confirm");
        return;
      }
      state.pending = null;
      state.unsettled = null;
      if (result.ok) {
        notify("");
        pending.done(result.body);
        return;
      }
      if (result.status === 401) return;
      failed(result.body, pending);
    } finally {
      state.busy = false;
    }
  }

  function failed(problem, pending) {
    if (problem.code === "insufficient_funds" && problem.balance > 0 && pending.path === "/v1/redemptions") {
      state.card = { ...state.card, balance: problem.balance };
      showCard(state.ref, state.card);
      notify(problemText(problem), {
        label: fmt("take_what_is_there", { balance: money(problem.balance, problem.currency) }),
        run: () => askRedeem(pending.body.amount, true),
      });
      return;
    }
    if (state.card && pending.path === "/v1/redemptions") show("card");
    else toScan();
    notify(problemText(problem));
  }

  function showReceipt(title, amount, posting) {
    $("receipt-title").textContent = title;
    $("receipt-amount-label").textContent = posting.type === "refund" ? fmt("refunded") : fmt("taken");
    $("receipt-taken").textContent = money(amount, posting.currency);
    $("receipt-left").textContent = money(posting.card.balance, posting.currency);
    const remainder = posting.remainder_due || 0;
    $("receipt-remainder-row").hidden = remainder <= 0;
    $("receipt-remainder").textContent = money(remainder, posting.currency);
    $("receipt-reference").textContent = posting.id;
    show("receipt");
  }

  function continueToConfirm(event) {
    event.preventDefault();
    const amount = parseAmount($("amount").value);
    if (amount === null) {
      $("amount-error").textContent = fmt("amount_invalid");
      return;
    }
    askRedeem(amount, false);
  }

  function askBlock() {
    openConfirm(fmt("confirm_block", { last4: state.card.code_last4 }), "/v1/terminal/cards/block", { ...state.ref }, () => {
      toScan();
      notify(fmt("blocked_done"));
    });
  }

  function askRefund(redemption) {
    openConfirm(
      fmt("confirm_refund", { amount: money(redemption.refundable_amount, redemption.currency), last4: redemption.code_last4 }),
      "/v1/refunds",
      { redemption: redemption.id },
      (refund) => showReceipt(fmt("refund_done"), refund.amount, refund),
    );
  }

  // -- today's redemptions ------------------------------------------------------------------------------

  async function loadToday() {
    const result = await api("GET", "/v1/terminal/redemptions");
    if (!result.ok) return;
    const list = $("today");
    list.replaceChildren();
    $("today-empty").hidden = result.body.data.length > 0;
    for (const redemption of result.body.data) {
      const item = document.createElement("li");
      item.dataset.redemption = redemption.id;
      const time = document.createElement("span");
      time.className = "time";
      time.textContent = new Date(redemption.created_at).toLocaleTimeString(lang === "zh" ? "zh-CN" : "en-GB", {
        hour: "2-digit",
        minute: "2-digit",
      });
      const card = document.createElement("span");
      card.className = "last4";
      card.textContent = "···· " + redemption.code_last4;
      const amount = document.createElement("span");
      amount.className = "money";
      amount.textContent = money(redemption.amount_taken, redemption.currency);
      item.append(time, card, amount);
      if (redemption.refundable_amount < redemption.amount_taken) {
        const refunded = document.createElement("span");
        refunded.className = "badge";
        refunded.textContent = fmt("refunded") + " " + money(redemption.amount_taken - redemption.refundable_amount, redemption.currency);
        item.append(refunded);
      }
      if (redemption.can_refund) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "refund";
        button.textContent = fmt("refund");
        button.addEventListener("click", () => askRefund(redemption));
        item.append(button);
      }
      list.append(item);
    }
  }

  function toScan() {
    state.ref = null;
    state.card = null;
    state.pending = null;
    show("scan");
    loadToday();
  }

  // -- the camera (where the browser has BarcodeDetector) ----------------------------------------------

  async function toggleCamera() {
    if (state.camera) {
      stopCamera();
      return;
    }
    const video = $("camera-view");
    try {
      const detector = new BarcodeDetector({ formats: ["qr_code"] });
      const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
      video.srcObject = stream;
      video.hidden = false;
      await video.play();
      state.camera = { stream, timer: 0 };
      const tick = async () => {
        if (!state.camera) return;
        try {
          const found = await detector.detect(video);
          if (found.length) {
            stopCamera();
            $("scan").value = found[0].rawValue;
            scanned();
            return;
          }
        } catch (error) {
          /* a frame that could not be read: try the next one */
        }
        state.camera.timer = window.setTimeout(tick, 200);
      };
      tick();
    } catch (error) {
      stopCamera();
      notify(fmt("err_other", { code: "camera" }));
    }
  }

  function stopCamera() {
    if (!state.camera) return;
    window.clearTimeout(state.camera.timer);
    for (const track of state.camera.stream.getTracks()) track.stop();
    state.camera = null;
    $("camera-view").hidden = true;
  }

  // -- wiring ------------------------------------------------------------------------------------------

  $("enrol-form").addEventListener("submit", enrol);
  $("scan-form").addEventListener("submit", scanned);
  $("scan").addEventListener("input", codeHint);
  $("amount-form").addEventListener("submit", continueToConfirm);
  $("amount").addEventListener("input", () => ($("amount-error").textContent = ""));
  $("card-cancel").addEventListener("click", () => {
    notify("");
    toScan();
  });
  $("block").addEventListener("click", askBlock);
  $("confirm").addEventListener("click", confirm);
  $("confirm-cancel").addEventListener("click", () => {
    notify("");
    if (state.card && state.pending && state.pending.path !== "/v1/refunds") show("card");
    else toScan();
    state.pending = null;
  });
  $("next").addEventListener("click", toScan);
  $("forget").addEventListener("click", forget);
  if ("BarcodeDetector" in window && navigator.mediaDevices && navigator.mediaDevices.getUserMedia) {
    $("camera").hidden = false;
    $("camera").addEventListener("click", toggleCamera);
  }
  start();
})();
