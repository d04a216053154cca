// Accessibility fixes for the theme's HTML, found by axe-core in tests/test_browser.py.
// Jupyter Book adds every .js file in _static/ to every page.
document.addEventListener("DOMContentLoaded", () => {
  // The sidebar's expand/collapse toggle of each part is a <summary> holding
  // only an icon, so a screen reader announces it without a name (axe:
  // summary-name, serious). Name it after the part it opens.
  document.querySelectorAll(".bd-sidebar details > summary").forEach((summary) => {
    if (summary.textContent.trim() || summary.hasAttribute("aria-label")) return;
    const item = summary.closest("li");
    const link = item && item.querySelector(":scope > a");
    const title = link ? link.textContent.trim() : "";
    summary.setAttribute("aria-label", title ? `Pages in ${title}` : "Pages in this part");
  });
});
