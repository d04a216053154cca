// Typeset the book's maths with KaTeX, which ships with the book
// (vendor/README.md): no network, and a tenth of MathJax's weight.
// Jupyter Book adds every .js file in _static/ to every page; on a page with
// maths Sphinx also loads KaTeX itself (_config.yml: mathjax_path), deferred,
// so it has run by DOMContentLoaded.
//
// Sphinx writes inline maths as <span class="math">\(...\)</span> and display
// maths as <div class="math" id="equation-..."><span class="eqno">(3)...</span>
// \[...\]</div>; the equation number and {eq} references are Sphinx's own.
// Each is replaced by KaTeX's HTML (with MathML for screen readers); a
// display keeps its number. TeX that KaTeX cannot read is shown in red with
// the class katex-error, which fails tests/test_browser.py.
(() => {
  const INLINE = /^\s*\\\(([\s\S]*)\\\)\s*$/;
  const DISPLAY = /^\s*\\\[([\s\S]*)\\\]\s*$/;

  function typeset(element, display) {
    const texNodes = [...element.childNodes].filter(
      (node) => node.nodeType === Node.TEXT_NODE && node.textContent.trim());
    if (!texNodes.length) return;
    const text = texNodes.map((node) => node.textContent).join("");
    const match = text.match(display ? DISPLAY : INLINE);
    const tex = match ? match[1] : text; // an amsmath environment has no \[ \]
    const html = katex.renderToString(tex, {
      displayMode: display,
      throwOnError: false,
      output: "htmlAndMathml",
    });
    texNodes.slice(1).forEach((node) => node.remove());
    const holder = document.createElement("span");
    holder.innerHTML = html;
    texNodes[0].replaceWith(...holder.childNodes);
  }

  function typesetAll() {
    if (typeof katex === "undefined") return; // a page without maths
    document.querySelectorAll("span.math").forEach((el) => typeset(el, false));
    document.querySelectorAll("div.math").forEach((el) => typeset(el, true));
    // An equation wider than the screen scrolls in its own box
    // (_static/browser.css); a keyboard reaches that box with Tab.
    const displays = document.querySelectorAll("div.math > .katex-display");
    const mark = (el) => {
      if (el.scrollWidth > el.clientWidth + 1) el.setAttribute("tabindex", "0");
      else el.removeAttribute("tabindex");
    };
    // Again when the width changes, and when KaTeX's fonts have loaded.
    const resized = new ResizeObserver((entries) => entries.forEach((e) => mark(e.target)));
    displays.forEach((el) => { mark(el); resized.observe(el); });
    document.fonts.ready.then(() => displays.forEach(mark));
    document.documentElement.dataset.maths = "typeset";
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", typesetAll);
  } else {
    typesetAll();
  }
})();
