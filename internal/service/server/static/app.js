// Small progressive enhancement: filter key/value tables. The pages work without it.
document.querySelectorAll("input.filter").forEach(function (input) {
  var table = document.getElementById(input.dataset.target);
  if (!table) return;
  input.addEventListener("input", function () {
    var q = input.value.toLowerCase();
    table.querySelectorAll("tr").forEach(function (tr) {
      tr.hidden = q !== "" && tr.textContent.toLowerCase().indexOf(q) < 0;
    });
  });
});

// Auto-refresh of the groups page: poll the JSON of the same selection
// (/api/v1/groups?FILTER) every 30 s and reload when it has new crashes.
(function () {
  var summary = document.getElementById("summary");
  if (!summary || !window.fetch) return;
  function poll() {
    fetch(summary.dataset.api, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (j) {
        if (!j) return;
        var last = "";
        (j.groups || []).forEach(function (g) { if (g.last_seen > last) last = g.last_seen; });
        if (String(j.crashes) !== summary.dataset.crashes || (last && last.slice(0, 19) !== summary.dataset.last.slice(0, 19))) {
          location.reload();
        }
      })
      .catch(function () {});
  }
  setInterval(poll, Number(summary.dataset.interval || 30000));
})();
