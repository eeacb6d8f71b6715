// taskq dashboard: live fragments over server-sent events, and actions sent without a reload.
// Hand-written, no build step. The server renders (and escapes) every fragment.
(function () {
  "use strict";
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  var live = document.getElementById("live");
  var source = null;

  function connect() {
    if (source) { source.close(); }
    var url = document.body.dataset.stream;
    var filters = new URLSearchParams(location.search);
    filters.forEach(function (value, key) { url += "&" + encodeURIComponent(key) + "=" + encodeURIComponent(value); });
    source = new EventSource(url);
    source.addEventListener("open", function () { live.textContent = "live"; live.className = "on"; });
    source.addEventListener("error", function () { live.textContent = "reconnecting"; live.className = "off"; });
    source.addEventListener("fragment", function (event) {
      var part = JSON.parse(event.data);
      var target = document.getElementById(part.id);
      if (target) { target.innerHTML = part.html; }
    });
  }

  function flash(message, ok) {
    var box = document.getElementById("flash");
    box.textContent = message;  // text, never markup
    box.className = ok ? "ok" : "failed";
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.id === "task-filter") {  // filters: a new stream, no reload
      event.preventDefault();
      var query = new URLSearchParams(new FormData(form));
      history.replaceState(null, "", "?" + query.toString());
      connect();
      return;
    }
    if (!form.classList.contains("action")) { return; }
    event.preventDefault();
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) { return; }
    fetch(form.action, {
      method: "POST", body: new URLSearchParams(new FormData(form)), credentials: "same-origin",
      headers: {"X-Requested-With": "fetch", "X-CSRF-Token": csrf}
    }).then(function (response) {
      return response.json().then(function (body) { flash(body.message, response.ok); },
                                  function () { flash(response.status + " " + response.statusText, false); });
    }, function (error) { flash("not sent: " + error, false); });
  });

  connect();
})();
