/* The chat widget. Hand-written, no dependencies, served by the site it talks to.
 *
 *   <script src="https://<site>/widget.js" data-key="pk_…" async></script>
 *
 * Attributes: data-key (required), data-mode="inline" with data-target="<CSS selector>" to
 * render inside an element instead of a launcher button, data-license-key and
 * data-fingerprint for license-gated keys. Everything renders in a shadow root, so the host
 * page's CSS does not reach in and ours does not leak out. The visitor id lives in the host
 * page's localStorage, so the conversation continues across page loads.
 */
(function () {
  "use strict";
  var script = document.currentScript ||
    document.querySelector('script[data-key][src*="widget.js"]');
  if (!script || !script.dataset.key) { return; }
  var KEY = script.dataset.key;
  var BASE = new URL(script.src, location.href).origin;
  var API = BASE + "/api/v1/widget/embed/" + encodeURIComponent(KEY);
  var INLINE = script.dataset.mode === "inline";
  var STORE = "wgt:" + KEY;
  var token = null, tokenUntil = 0, busy = false, config = null;

  function visitorId() {
    var id = null;
    try { id = localStorage.getItem(STORE + ":visitor"); } catch (e) { /* storage blocked */ }
    if (!id) {
      var bytes = new Uint8Array(16);
      crypto.getRandomValues(bytes);
      id = Array.prototype.map.call(bytes, function (b) {
        return ("0" + b.toString(16)).slice(-2);
      }).join("");
      try { localStorage.setItem(STORE + ":visitor", id); } catch (e) { /* in memory only */ }
    }
    return id;
  }
  var VISITOR = visitorId();

  var CSS = [
    // Set on our own top nodes, not inherited from the host element: the page's styles
    // (even !important ones) can reach the host element, never the nodes inside the root.
    ":host{all:initial;--p:#111827;--a:#6366f1}",
    ".panel,.launcher{font:15px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;",
    "color:#111827;text-align:left;letter-spacing:normal}",
    "*{box-sizing:border-box}",
    ".launcher{position:fixed;right:16px;bottom:16px;z-index:2147483000;width:56px;height:56px;",
    "border-radius:50%;border:0;background:var(--p);color:#fff;cursor:pointer;",
    "box-shadow:0 4px 14px rgba(0,0,0,.25);font-size:26px;display:flex;align-items:center;",
    "justify-content:center}",
    ".launcher:focus-visible,button:focus-visible,textarea:focus-visible{outline:3px solid var(--a);",
    "outline-offset:2px}",
    ".panel{display:flex;flex-direction:column;background:#fff;border:1px solid #e5e7eb;",
    "border-radius:12px;overflow:hidden;box-shadow:0 10px 30px rgba(0,0,0,.2)}",
    ".floating{position:fixed;right:16px;bottom:84px;z-index:2147483000;",
    "width:min(380px,calc(100vw - 32px));height:min(560px,calc(100vh - 110px))}",
    ".inline{width:100%;height:100%;min-height:360px}",
    "[hidden]{display:none!important}",
    "header{display:flex;align-items:center;gap:8px;padding:10px 12px;background:var(--p);color:#fff}",
    "header img{width:28px;height:28px;border-radius:6px;object-fit:contain;background:#fff}",
    "header h2{font-size:16px;margin:0;flex:1;font-weight:600;overflow:hidden;",
    "text-overflow:ellipsis;white-space:nowrap}",
    "header button{background:transparent;border:0;color:#fff;font-size:22px;cursor:pointer;",
    "width:36px;height:36px;border-radius:6px}",
    ".log{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:8px;",
    "background:#f9fafb}",
    ".msg{max-width:85%;padding:8px 12px;border-radius:12px;white-space:pre-wrap;",
    "overflow-wrap:anywhere}",
    ".user{align-self:flex-end;background:var(--a);color:#fff;border-bottom-right-radius:4px}",
    ".assistant{align-self:flex-start;background:#fff;border:1px solid #e5e7eb;",
    "border-bottom-left-radius:4px}",
    ".error{align-self:stretch;background:#fef2f2;color:#991b1b;border:1px solid #fecaca}",
    "form{display:flex;gap:8px;padding:10px;border-top:1px solid #e5e7eb;background:#fff}",
    "textarea{flex:1;resize:none;font:inherit;padding:8px 10px;border:1px solid #d1d5db;",
    "border-radius:8px;min-height:40px;max-height:120px;color:#111827;background:#fff}",
    "form button{border:0;border-radius:8px;padding:0 14px;background:var(--p);color:#fff;",
    "font:inherit;font-weight:600;cursor:pointer;min-height:40px}",
    "form button:disabled{opacity:.6;cursor:default}",
    "@media (max-width:480px){.floating{right:0;bottom:0;width:100vw;height:100vh;",
    "height:100dvh;border-radius:0}.launcher.open{display:none}}"
  ].join("");

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) { node.setAttribute(name, attrs[name]); });
    if (text) { node.textContent = text; }
    return node;
  }

  var host = el("div", { "data-chat-widget": "" });
  var root = host.attachShadow({ mode: "open" });
  // A constructed stylesheet where the browser has them: a strict Content-Security-Policy
  // on the host page (no 'unsafe-inline' styles) does not block it as it would <style>.
  if (root.adoptedStyleSheets !== undefined && window.CSSStyleSheet &&
      "replaceSync" in CSSStyleSheet.prototype) {
    var sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
    root.adoptedStyleSheets = [sheet];
  } else {
    var style = el("style");
    style.textContent = CSS;
    root.appendChild(style);
  }
  var panel = el("section", { "class": "panel " + (INLINE ? "inline" : "floating"),
                              role: INLINE ? "region" : "dialog", "aria-label": "Chat" });
  var header = el("header");
  var logo = el("img", { alt: "", hidden: "" });
  var title = el("h2", {}, "Chat");
  header.appendChild(logo);
  header.appendChild(title);
  var close = el("button", { type: "button", "aria-label": "Close chat" }, "\u00d7");
  if (!INLINE) { header.appendChild(close); }
  var log = el("div", { "class": "log", role: "log", "aria-live": "polite" });
  var form = el("form");
  var input = el("textarea", { rows: "1", "aria-label": "Message", maxlength: "4000" });
  var send = el("button", { type: "submit" }, "Send");
  form.appendChild(input);
  form.appendChild(send);
  panel.appendChild(header);
  panel.appendChild(log);
  panel.appendChild(form);
  var launcher = el("button", { type: "button", "class": "launcher", "aria-label": "Open chat",
                                "aria-expanded": "false" }, "\ud83d\udcac");

  function bubble(role, text) {
    var node = el("div", { "class": "msg " + role }, text);
    log.appendChild(node);
    log.scrollTop = log.scrollHeight;
    return node;
  }

  function problem(response, body) {
    var error = body && body.error;
    if (error && error.details && error.details.license_code) {
      return error.message + " (" + error.details.license_code + ")";
    }
    return (error && error.message) || ("The chat is unavailable (" + response.status + ").");
  }

  function call(path, options) {
    return fetch(API + path, options).then(function (response) {
      if (response.ok) { return response; }
      return response.json().catch(function () { return null; }).then(function (body) {
        var failure = new Error(problem(response, body));
        failure.status = response.status;
        failure.code = body && body.error && body.error.code;
        throw failure;
      });
    }, function () {
      throw new Error("This chat is not available on this site.");
    });
  }

  function getToken(fresh) {
    if (!fresh && token && Date.now() < tokenUntil) { return Promise.resolve(token); }
    var body = { visitor_id: VISITOR };
    if (script.dataset.licenseKey) { body.license_key = script.dataset.licenseKey; }
    if (script.dataset.fingerprint) { body.fingerprint = script.dataset.fingerprint; }
    return call("/token", { method: "POST", headers: { "Content-Type": "application/json" },
                            body: JSON.stringify(body) })
      .then(function (r) { return r.json(); })
      .then(function (answer) {
        token = answer.token;
        tokenUntil = Date.now() + (answer.expires_in - 30) * 1000;
        return token;
      });
  }

  // With the token; once more with a fresh one if it expired meanwhile.
  function authed(path, options, retried) {
    return getToken(retried).then(function (t) {
      var opts = Object.assign({}, options);
      opts.headers = Object.assign({ Authorization: "Bearer " + t }, options.headers || {});
      return call(path, opts);
    }).catch(function (failure) {
      if (!retried && failure.status === 401) { return authed(path, options, true); }
      throw failure;
    });
  }

  function readEvents(response, onEvent) {
    var reader = response.body.getReader();
    var decoder = new TextDecoder();
    var buffer = "";
    function pump() {
      return reader.read().then(function (chunk) {
        if (chunk.done) { return; }
        buffer += decoder.decode(chunk.value, { stream: true });
        var parts = buffer.split("\n\n");
        buffer = parts.pop();
        parts.forEach(function (block) {
          var kind = "message", data = "";
          block.split("\n").forEach(function (line) {
            if (line.indexOf("event: ") === 0) { kind = line.slice(7); }
            else if (line.indexOf("data: ") === 0) { data += line.slice(6); }
          });
          if (data) { onEvent(kind, JSON.parse(data)); }
        });
        return pump();
      });
    }
    return pump();
  }

  function submit(event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text || busy) { return; }
    busy = true;
    send.disabled = true;
    input.value = "";
    bubble("user", text);
    var answer = bubble("assistant", "");
    answer.setAttribute("aria-busy", "true");
    authed("/chat", { method: "POST", headers: { "Content-Type": "application/json" },
                      body: JSON.stringify({ message: text }) })
      .then(function (response) {
        return readEvents(response, function (kind, data) {
          if (kind === "token") {
            answer.textContent += data.text;
            log.scrollTop = log.scrollHeight;
          } else if (kind === "end" && data.status !== "succeeded") {
            answer.className = "msg error";
            answer.textContent = (data.error && data.error.message) || "No answer this time.";
          }
        });
      })
      .catch(function (failure) {
        answer.className = "msg error";
        answer.setAttribute("role", "alert");
        answer.textContent = failure.message;
      })
      .then(function () {
        answer.removeAttribute("aria-busy");
        busy = false;
        send.disabled = false;
        input.focus();
      });
  }

  function loadHistory() {
    return authed("/conversation", { method: "GET" })
      .then(function (r) { return r.json(); })
      .then(function (thread) {
        if (!thread.messages.length) { bubble("assistant", config.greeting); return; }
        thread.messages.forEach(function (m) { bubble(m.role, m.content); });
      })
      .catch(function (failure) {
        bubble("error", failure.message).setAttribute("role", "alert");
      });
  }

  function setOpen(open) {
    panel.hidden = !open;
    launcher.setAttribute("aria-expanded", String(open));
    launcher.classList.toggle("open", open);
    try { sessionStorage.setItem(STORE + ":open", open ? "1" : ""); } catch (e) { /* fine */ }
    if (open) { input.focus(); } else { launcher.focus(); }
  }

  function start(look) {
    config = look;
    host.style.setProperty("--p", look.primary_color);
    host.style.setProperty("--a", look.accent_color);
    title.textContent = look.name;
    input.setAttribute("placeholder", look.placeholder);
    if (look.logo_url) {
      logo.src = new URL(look.logo_url, BASE).href;
      logo.hidden = false;
    }
    form.addEventListener("submit", submit);
    input.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey) { submit(event); }
    });
    if (INLINE) {
      var target = document.querySelector(script.dataset.target || "");
      (target || script.parentNode).appendChild(host);
      root.appendChild(panel);
    } else {
      panel.hidden = true;
      root.appendChild(panel);
      root.appendChild(launcher);
      document.body.appendChild(host);
      launcher.addEventListener("click", function () { setOpen(panel.hidden); });
      close.addEventListener("click", function () { setOpen(false); });
      panel.addEventListener("keydown", function (event) {
        if (event.key === "Escape") { setOpen(false); }
      });
      var wasOpen = false;
      try { wasOpen = sessionStorage.getItem(STORE + ":open") === "1"; } catch (e) { /* no */ }
      if (wasOpen) { panel.hidden = false; launcher.setAttribute("aria-expanded", "true"); }
    }
    return loadHistory();
  }

  function boot() {
    fetch(API + "/config").then(function (response) {
      if (!response.ok) { throw new Error("unavailable"); }
      return response.json();
    }).then(start, function () {
      // Not allowed here (or revoked): say so quietly in the console, render nothing.
      if (window.console) { console.warn("chat widget: this key is not available here"); }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", boot);
  } else {
    boot();
  }
}());
