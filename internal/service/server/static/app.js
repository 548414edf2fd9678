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
