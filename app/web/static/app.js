/* The dashboard's small behaviours, no framework: menu toggle, confirm dialog, copy buttons,
   checkbox presets, the branding preview. Every page works without it (forms still submit,
   the menu stays open); this only makes them nicer. Loaded with defer. */
(function () {
  "use strict";
  var root = document.documentElement;
  root.classList.add("js");

  /* Menu button: below 768 px the sidebar folds behind it. */
  var menu = document.querySelector("[data-menu-button]");
  if (menu) {
    menu.addEventListener("click", function () {
      var open = document.body.classList.toggle("nav-open");
      menu.setAttribute("aria-expanded", open ? "true" : "false");
    });
  }

  /* Confirm: <form data-confirm="Revoke this key?"> asks first, in a native <dialog>. */
  var dialog = document.getElementById("confirm-dialog");
  var pending = null;
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches || !form.matches("form[data-confirm]")) return;
    if (form.dataset.confirmed === "yes") return;
    event.preventDefault();
    if (!dialog || typeof dialog.showModal !== "function") {
      if (window.confirm(form.dataset.confirm)) { form.dataset.confirmed = "yes"; form.submit(); }
      return;
    }
    pending = form;
    dialog.querySelector("[data-confirm-text]").textContent = form.dataset.confirm;
    var go = dialog.querySelector("[data-confirm-yes]");
    go.textContent = form.dataset.confirmAction || "Confirm";
    dialog.showModal();
    dialog.querySelector("[data-confirm-no]").focus();
  });
  if (dialog) {
    dialog.querySelector("[data-confirm-yes]").addEventListener("click", function () {
      dialog.close();
      if (pending) { pending.dataset.confirmed = "yes"; pending.submit(); pending = null; }
    });
    dialog.querySelector("[data-confirm-no]").addEventListener("click", function () {
      dialog.close(); pending = null;
    });
  }

  /* Copy: <button data-copy="#id"> copies that element's text. */
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-copy]");
    if (!button) return;
    var source = document.querySelector(button.dataset.copy);
    if (!source) return;
    var text = (source.value || source.textContent).trim();
    var done = function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 2000);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () {});
    } else {
      var range = document.createRange();
      range.selectNodeContents(source);
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      try { document.execCommand("copy"); done(); } catch (e) { /* selected: copy by hand */ }
    }
  });

  /* Presets: <button data-preset="a b" data-preset-for="name"> ticks exactly those boxes. */
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-preset]");
    if (!button) return;
    event.preventDefault();
    var wanted = button.dataset.preset.split(" ");
    var boxes = document.querySelectorAll('input[type=checkbox][name="' + button.dataset.presetFor + '"]');
    Array.prototype.forEach.call(boxes, function (box) {
      box.checked = wanted.indexOf("*") !== -1 || wanted.indexOf(box.value) !== -1;
    });
  });

  /* <div data-show-when="select=value">: shown only while that select has that value. */
  Array.prototype.forEach.call(document.querySelectorAll("[data-show-when]"), function (box) {
    var rule = box.dataset.showWhen.split("="), select = document.getElementById(rule[0]);
    if (!select) return;
    var sync = function () { box.hidden = select.value !== rule[1]; };
    select.addEventListener("change", sync);
    sync();
  });

  /* Branding preview: follows the name, colour and logo fields as they change. */
  var preview = document.querySelector("[data-brand-preview]");
  if (preview) {
    var form = preview.closest("form") || document;
    var pick = function (name) { return form.querySelector('[name="' + name + '"]'); };
    var luminance = function (hex) {
      var c = [1, 3, 5].map(function (i) {
        var v = parseInt(hex.substr(i, 2), 16) / 255;
        return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
      });
      return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
    };
    var ratio = function (a, b) {
      var x = luminance(a), y = luminance(b);
      return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05);
    };
    var readable = function (hex) { return ratio(hex, "#ffffff") >= ratio(hex, "#111827") ? "#ffffff" : "#111827"; };
    var update = function () {
      var primary = pick("primary_color").value, accent = pick("accent_color").value;
      var name = pick("display_name").value;
      preview.querySelectorAll("[data-p-name]").forEach(function (n) { n.textContent = name; });
      preview.querySelectorAll("[data-p-primary]").forEach(function (n) {
        n.style.background = primary; n.style.color = "#ffffff";
      });
      preview.querySelectorAll("[data-p-accent]").forEach(function (n) {
        n.style.background = accent; n.style.color = readable(accent);
      });
      var warn = preview.querySelector("[data-p-contrast]");
      var r = ratio(primary, "#ffffff");
      warn.hidden = r >= 4.5;
      warn.textContent = "White text on " + primary + " has a contrast of " + r.toFixed(1) +
        ":1; it needs at least 4.5:1. This colour will be refused.";
    };
    ["primary_color", "accent_color", "display_name"].forEach(function (n) {
      var input = pick(n); if (input) input.addEventListener("input", update);
    });
    var logo = pick("logo_file");
    if (logo) {
      logo.addEventListener("change", function () {
        var file = logo.files && logo.files[0];
        if (!file) return;
        var url = URL.createObjectURL(file);
        preview.querySelectorAll("[data-p-logo]").forEach(function (img) { img.src = url; img.hidden = false; });
      });
    }
    update();
  }
})();
