/* heapdiff report: sort tables by a click on a column title, expand or collapse every stack.
   Vanilla JS, no data embedded: it reorders the rows already in the page. */
(function () {
  "use strict";

  function cellValue(row, col, numeric) {
    var cell = row.cells[col];
    if (!cell) {
      return numeric ? -Infinity : "";
    }
    var raw = cell.hasAttribute("data-v") ? cell.getAttribute("data-v") : cell.textContent;
    if (numeric) {
      var v = parseFloat(raw);
      return isNaN(v) ? -Infinity : v;
    }
    return raw.trim().toLowerCase();
  }

  function compare(a, b) {
    return a < b ? -1 : a > b ? 1 : 0;
  }

  function sortTable(table, th) {
    var headRow = th.parentNode;
    var col = Array.prototype.indexOf.call(headRow.cells, th);
    var numeric = th.getAttribute("data-type") === "num";
    var current = th.getAttribute("aria-sort");
    var dir;
    if (current === "ascending") {
      dir = "descending";
    } else if (current === "descending") {
      dir = "ascending";
    } else {
      dir = th.getAttribute("data-first") || (numeric ? "descending" : "ascending");
    }
    var sign = dir === "ascending" ? 1 : -1;
    var body = table.tBodies[0];
    var items = Array.prototype.map.call(body.rows, function (row, i) {
      var rank = parseFloat(row.getAttribute("data-rank"));
      return { row: row, key: cellValue(row, col, numeric), tie: isNaN(rank) ? i : rank };
    });
    items.sort(function (a, b) {
      return sign * compare(a.key, b.key) || a.tie - b.tie;
    });
    var frag = document.createDocumentFragment();
    items.forEach(function (item) {
      frag.appendChild(item.row);
    });
    body.appendChild(frag);
    Array.prototype.forEach.call(headRow.cells, function (cell) {
      if (cell !== th) {
        cell.removeAttribute("aria-sort");
      }
    });
    th.setAttribute("aria-sort", dir);
  }

  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    if (!table.tHead || !table.tBodies.length) {
      return;
    }
    Array.prototype.forEach.call(table.tHead.querySelectorAll("th"), function (th) {
      var button = th.querySelector("button.sort");
      if (button) {
        button.addEventListener("click", function () {
          sortTable(table, th);
        });
      }
    });
  });

  function setAll(open) {
    Array.prototype.forEach.call(document.querySelectorAll("#group-table td.stack details"), function (d) {
      d.open = open;
    });
  }
  var expand = document.getElementById("expand-all");
  var collapse = document.getElementById("collapse-all");
  if (expand && collapse) {
    expand.addEventListener("click", function () {
      setAll(true);
    });
    collapse.addEventListener("click", function () {
      setAll(false);
    });
    Array.prototype.forEach.call(document.querySelectorAll(".js-only"), function (el) {
      el.hidden = false;
    });
  }
})();
