// The crash page's "Copy Markdown bug report" button: the report is in the
// page (a textarea), copied with the Clipboard API; where that is missing
// or refused (a page served over plain HTTP to another machine is not a
// secure context), the textarea is shown and selected, and copied with
// execCommand or by the user's Ctrl+C.
(function () {
  var button = document.getElementById("copy-report");
  if (!button) return;
  var status = document.getElementById("copy-status");
  var source = document.getElementById(button.dataset.source);
  if (!source) return;
  function say(text) { if (status) status.textContent = text; }
  function fallback() {
    var details = source.closest("details");
    if (details) details.open = true;
    source.focus();
    source.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    say(ok ? "Copied (" + source.value.length + " characters)." : "Selected below: press Ctrl+C to copy.");
    button.dataset.copied = ok ? "execCommand" : "selected";
  }
  button.addEventListener("click", function () {
    var text = source.value;
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () {
        say("Copied (" + text.length + " characters).");
        button.dataset.copied = "clipboard";
      }, fallback);
      return;
    }
    fallback();
  });
})();
