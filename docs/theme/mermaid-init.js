// Renders the guide's ```mermaid blocks in the browser with mermaid.min.js,
// which .ci/book copies beside this file from the npm package `mermaid`
// (docs/theme/mermaid.min.js, not committed): the book needs no CDN.
(function () {
  if (typeof mermaid === "undefined") {
    return;
  }
  document.querySelectorAll("code.language-mermaid").forEach(function (code) {
    var diagram = document.createElement("pre");
    diagram.className = "mermaid";
    diagram.textContent = code.textContent;
    code.parentElement.replaceWith(diagram);
  });
  var html = document.documentElement.classList;
  var dark = html.contains("coal") || html.contains("navy") || html.contains("ayu");
  mermaid.initialize({ startOnLoad: false, theme: dark ? "dark" : "default" });
  mermaid.run({ querySelector: "pre.mermaid" });
})();
