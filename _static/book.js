// Small behaviours the themes do not offer.
// 1. Each exercise shows its stable label (ex-03-impute) beside its number, so an instructor can cite
//    it in an assignment.
// 2. A solution's title links to its exercise. Clicking that link would jump away and leave the
//    solution closed (sphinx-togglebutton only knows clicks on the title itself); instead it opens
//    and closes the solution like the rest of the title does.
// 3. On a phone, a table in the text is read as one card per row (_static/book.css): each cell
//    names its column, so no column is off-screen.
document.addEventListener("DOMContentLoaded", () => {
  for (const table of document.querySelectorAll(".bd-article table")) {
    if (table.closest(".cell_output")) continue;
    const headers = [...table.querySelectorAll("thead th")].map((th) => th.innerText.trim());
    for (const row of table.querySelectorAll("tbody tr")) {
      [...row.children].forEach((cell, i) => cell.setAttribute("data-column", headers[i] || ""));
    }
    table.classList.add("cards-on-phones");
  }
  for (const exercise of document.querySelectorAll(".exercise.admonition[id^='ex-']")) {
    const title = exercise.querySelector(".admonition-title");
    if (title && !title.querySelector(".exercise-label")) {
      const label = document.createElement("code");
      label.className = "exercise-label";
      label.textContent = exercise.id;
      title.appendChild(label);
    }
  }
});

document.addEventListener(
  "click",
  (event) => {
    const link = event.target.closest(".solution.dropdown > .admonition-title a");
    const toggle = link && link.closest(".admonition-title").querySelector(".toggle-button");
    if (toggle) {
      event.preventDefault();
      event.stopPropagation();
      toggle.click();
    }
  },
  true,
);
