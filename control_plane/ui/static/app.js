// orch UI: theme toggle, keyboard shortcuts, local times, JSON checks on the Run form. No dependencies but htmx.
(function () {
  "use strict";
  var root = document.documentElement;

  // -- theme: stored choice wins over prefers-color-scheme -------------------------------------------------------
  function applyTheme(theme) {
    if (theme === "light" || theme === "dark") root.setAttribute("data-theme", theme);
    else root.removeAttribute("data-theme");
    var button = document.getElementById("theme-toggle");
    if (button) button.setAttribute("aria-label", "Theme: " + (theme || "system") + " (click to change)");
    if (button) button.textContent = theme === "dark" ? "☾ Dark" : theme === "light" ? "☀ Light" : "◐ System";
  }
  var saved = null;
  try { saved = localStorage.getItem("orch-theme"); } catch (e) { /* private mode */ }
  applyTheme(saved);
  function cycleTheme() {
    var order = [null, "light", "dark"];
    var current = root.getAttribute("data-theme");
    var next = order[(order.indexOf(current) + 1) % order.length];
    try { if (next) localStorage.setItem("orch-theme", next); else localStorage.removeItem("orch-theme"); } catch (e) { /* ignore */ }
    applyTheme(next);
  }

  // -- times: UTC from the server, shown in the browser's zone with a relative title -----------------------------
  function localTimes(scope) {
    var els = (scope || document).querySelectorAll("time[datetime]");
    var now = Date.now();
    for (var i = 0; i < els.length; i++) {
      var el = els[i];
      if (el.dataset.local) continue;
      var d = new Date(el.getAttribute("datetime"));
      if (isNaN(d)) continue;
      el.textContent = d.toLocaleString(undefined, { year: "numeric", month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });
      var secs = Math.round((now - d.getTime()) / 1000);
      var abs = Math.abs(secs), text;
      if (abs < 60) text = abs + "s"; else if (abs < 3600) text = Math.round(abs / 60) + "m";
      else if (abs < 172800) text = Math.round(abs / 3600) + "h"; else text = Math.round(abs / 86400) + "d";
      el.title = (secs >= 0 ? text + " ago" : "in " + text) + " — " + d.toISOString();
      el.dataset.local = "1";
    }
  }

  // -- JSON fields of the Run form: refuse to submit invalid JSON, say where ------------------------------------
  function checkJson(form) {
    var ok = true;
    var fields = form.querySelectorAll("textarea[data-json]");
    for (var i = 0; i < fields.length; i++) {
      var t = fields[i], msg = "";
      if (t.value.trim()) {
        try { JSON.parse(t.value); } catch (e) { msg = "Not valid JSON: " + e.message; }
      }
      t.setCustomValidity(msg);
      t.setAttribute("aria-invalid", msg ? "true" : "false");
      if (msg) ok = false;
    }
    return ok;
  }
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (form.matches && form.matches("form[data-json-check]") && !checkJson(form)) {
      ev.preventDefault();
      form.reportValidity();
    }
  });
  document.addEventListener("input", function (ev) {
    if (ev.target.matches && ev.target.matches("textarea[data-json]")) { ev.target.setCustomValidity(""); }
  });

  // -- keyboard shortcuts (documented in docs/ui.md and the "?" dialog) -----------------------------------------
  var GO = { d: "/", r: "/runs", f: "/flows", p: "/deployments", q: "/work-queues", k: "/api-keys" };
  var pendingG = false, gTimer = null;
  function typing(el) {
    return el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
  }
  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (typing(ev.target)) {
      if (ev.key === "Escape") ev.target.blur();
      return;
    }
    if (pendingG) {
      pendingG = false; clearTimeout(gTimer);
      if (GO[ev.key]) { ev.preventDefault(); window.location.href = GO[ev.key]; }
      return;
    }
    if (ev.key === "g") { pendingG = true; gTimer = setTimeout(function () { pendingG = false; }, 1200); return; }
    if (ev.key === "/") {
      var f = document.querySelector("[data-filter-focus]");
      if (f) { ev.preventDefault(); f.focus(); }
      return;
    }
    if (ev.key === "?") {
      var dlg = document.getElementById("shortcuts");
      if (dlg && dlg.showModal) { ev.preventDefault(); dlg.showModal(); }
      return;
    }
    if (ev.key === "t") { cycleTheme(); return; }
    if (ev.key === "n") { var next = document.querySelector("[data-next-page]"); if (next) next.click(); return; }
    if (ev.key === "l") { var live = document.getElementById("live"); if (live) { live.checked = !live.checked; } }
  });

  document.addEventListener("DOMContentLoaded", function () {
    applyTheme(root.getAttribute("data-theme"));
    var button = document.getElementById("theme-toggle");
    if (button) button.addEventListener("click", cycleTheme);
    localTimes(document);
    var updated = document.getElementById("updated-at");
    if (updated) updated.textContent = "";
  });
  document.addEventListener("htmx:afterSwap", function (ev) {
    localTimes(ev.target && ev.target.parentNode ? ev.target.parentNode : document);
    var updated = document.getElementById("updated-at");
    if (updated && ev.detail && ev.detail.requestConfig && ev.detail.requestConfig.verb === "get") {
      updated.textContent = "Updated " + new Date().toLocaleTimeString();
    }
  });
  // Live refresh polls only while the "Live" box is ticked (checked from the trigger filter).
  window.orchLive = function () {
    var live = document.getElementById("live");
    return !live || live.checked;
  };
})();
