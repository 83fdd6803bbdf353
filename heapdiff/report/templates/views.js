/* heapdiff report: the flame graph, the top-down and bottom-up trees, the stack search and "Copy stack".
   Reads the page's JSON data block (never run as script); builds every element with createElement and
   textContent, so a frame's text is only ever text. */
(function () {
  "use strict";

  var holder = document.getElementById("report-data");
  if (!holder) {
    return;
  }
  var page = JSON.parse(holder.textContent);
  if (!page || page.version !== 1) {
    return;
  }
  var names = page.names;

  // ------------------------------------------------------------------------------------------ formats

  var UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

  function fmtBytes(n, signed) {
    var sign = n < 0 ? "-" : signed && n > 0 ? "+" : "";
    var v = Math.abs(n);
    var u = 0;
    while (v >= 1024 && u < UNITS.length - 1) {
      v /= 1024;
      u += 1;
    }
    if (u === 0) {
      return sign + Math.abs(n) + " B";
    }
    var text = v < 100 ? v.toFixed(1) : v.toFixed(0);
    if (text === "1024" && u < UNITS.length - 1) {
      text = "1.0";
      u += 1;
    }
    return sign + text + " " + UNITS[u];
  }

  function fmtCount(n, signed) {
    return (signed && n > 0 ? "+" : "") + n.toLocaleString("en-US");
  }

  function plural(n, one, many, signed) {
    return fmtCount(n, signed) + " " + (Math.abs(n) === 1 ? one : many);
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) {
      e.className = cls;
    }
    if (text !== undefined) {
      e.textContent = text;
    }
    return e;
  }

  // ------------------------------------------------------------------------------------------ trees

  function Tree(spec) {
    var c = spec.cols;
    var n = c.name.length;
    this.spec = spec;
    this.delta = !!spec.delta;
    this.c = c;
    this.n = n;
    this.kids = [];
    this.depth = [];
    this.size = [];
    this.x = [];
    var i;
    for (i = 0; i < n; i += 1) {
      this.kids.push([]);
      var p = c.parent[i];
      this.depth.push(p < 0 ? 0 : this.depth[p] + 1);
      this.size.push(c.growth[i] - c.shrink[i]);
      this.x.push(0);
      if (p >= 0) {
        this.kids[p].push(i);
      }
    }
    // preorder: a parent's place is known before its children are laid out left to right inside it
    for (i = 0; i < n; i += 1) {
      var at = this.x[i];
      for (var k = 0; k < this.kids[i].length; k += 1) {
        var kid = this.kids[i][k];
        this.x[kid] = at;
        at += this.size[kid];
      }
    }
  }

  Tree.prototype.label = function (i) {
    if (this.c.parent[i] < 0) {
      return "all call stacks";
    }
    if (this.c.other[i] > 0) {
      return "(" + plural(this.c.other[i], "smaller frame", "smaller frames") + " merged)";
    }
    return names[this.c.name[i]];
  };

  Tree.prototype.figures = function (i) {
    var c = this.c;
    if (!this.delta) {
      return fmtBytes(c.after_bytes[i]) + " in " + plural(c.after_blocks[i], "block", "blocks");
    }
    var dBytes = c.after_bytes[i] - c.before_bytes[i];
    var dBlocks = c.after_blocks[i] - c.before_blocks[i];
    return fmtBytes(dBytes, true) + ", " + plural(dBlocks, "block", "blocks", true);
  };

  Tree.prototype.details = function (i) {
    var c = this.c;
    var root = this.size[0] || 1;
    var lines = [this.label(i), this.figures(i)];
    if (this.delta) {
      lines.push("grew " + fmtBytes(c.growth[i], true) + ", shrank " + fmtBytes(c.shrink[i], true));
      lines.push("before " + fmtBytes(c.before_bytes[i]) + " (" + plural(c.before_blocks[i], "block", "blocks") +
        ") → after " + fmtBytes(c.after_bytes[i]) + " (" + plural(c.after_blocks[i], "block", "blocks") + ")");
    }
    lines.push((this.size[i] / root * 100).toFixed(1) + "% of the " + (this.delta ? "bytes that moved" : "total") +
      " · " + plural(c.groups[i], "call stack", "call stacks"));
    if (c.other[i] > 0) {
      lines.push("frames under " + this.spec.min_share * 100 + "% of the root" +
        (this.spec.capped ? ", or past the cap on the tree's size," : "") + " are merged into one");
    }
    return lines;
  };

  var trees = {};
  (page.trees || []).forEach(function (spec) {
    trees[spec.direction] = new Tree(spec);
  });

  // ------------------------------------------------------------------------------------------ tooltip

  var tip = document.getElementById("views-tip");

  function showTip(lines, ev) {
    if (!tip) {
      return;
    }
    tip.textContent = "";
    lines.forEach(function (line, k) {
      tip.appendChild(el("div", k === 0 ? "tip-head" : "", line));
    });
    tip.hidden = false;
    var x = Math.min(ev.clientX + 14, window.innerWidth - tip.offsetWidth - 8);
    var y = ev.clientY + 16;
    if (y + tip.offsetHeight > window.innerHeight - 8) {
      y = ev.clientY - tip.offsetHeight - 10;
    }
    tip.style.left = Math.max(x, 4) + "px";
    tip.style.top = Math.max(y, 4) + "px";
  }

  function hideTip() {
    if (tip) {
      tip.hidden = true;
    }
  }

  // ------------------------------------------------------------------------------------------ flame graph

  var ROW = 20;
  var MIN_PX = 1;
  var flameBox = document.getElementById("flame");
  var flameTree = trees.top_down;
  var zoomed = 0;
  var query = "";

  function moduleClass(name) {
    var m = /^[^!+]*/.exec(name)[0];
    var h = 0;
    for (var k = 0; k < m.length; k += 1) {
      h = (h * 31 + m.charCodeAt(k)) % 9973;
    }
    return "h" + (h % 6);
  }

  function drawNode(t, i, left, width, anc) {
    var node = el("div", "fn");
    node.setAttribute("data-i", String(i));
    if (anc) {
      node.classList.add("anc");
    }
    if (t.c.other[i] > 0) {
      node.classList.add("other");
    } else if (t.delta) {
      node.classList.add("diff");
      var grown = el("div", "gp");
      grown.style.width = (t.size[i] ? t.c.growth[i] / t.size[i] * 100 : 0) + "%";
      node.appendChild(grown);
    } else {
      node.classList.add(t.c.parent[i] < 0 ? "root" : moduleClass(names[t.c.name[i]]));
    }
    if (i === zoomed) {
      node.classList.add("zoomed");
    }
    var label = t.label(i);
    if (query && label.toLowerCase().indexOf(query) >= 0) {
      node.classList.add("match");
    }
    node.style.left = left + "px";
    node.style.width = width + "px";
    node.style.top = t.depth[i] * ROW + "px";
    if (width >= 24) {
      node.appendChild(el("span", "t", label));
    }
    return node;
  }

  function drawFlame() {
    if (!flameBox || !flameTree) {
      return;
    }
    var t = flameTree;
    flameBox.textContent = "";
    var width = flameBox.clientWidth;
    if (!t.size[0] || !width) {
      if (!t.size[0]) {
        flameBox.appendChild(el("p", "muted", t.delta ? "No call stack grew or shrank." :
          "No call stack holds outstanding blocks."));
        flameBox.style.height = "auto";
      }
      return;
    }
    var frag = document.createDocumentFragment();
    var origin = t.x[zoomed];
    var scale = width / t.size[zoomed];
    var deepest = t.depth[zoomed];
    // the zoomed node's callers, full width above it: a click on one zooms back out to it
    for (var a = t.c.parent[zoomed]; a >= 0; a = t.c.parent[a]) {
      frag.appendChild(drawNode(t, a, 0, width, true));
    }
    var todo = [zoomed];
    while (todo.length) {
      var i = todo.pop();
      var w = t.size[i] * scale;
      if (w < MIN_PX) {
        continue; // its children are no wider
      }
      frag.appendChild(drawNode(t, i, (t.x[i] - origin) * scale, w, false));
      if (t.depth[i] > deepest) {
        deepest = t.depth[i];
      }
      Array.prototype.push.apply(todo, t.kids[i]);
    }
    flameBox.appendChild(frag);
    flameBox.style.height = (deepest + 1) * ROW + "px";
    var reset = document.getElementById("flame-reset");
    if (reset) {
      reset.disabled = zoomed === 0;
    }
    var where = document.getElementById("flame-zoom");
    if (where) {
      where.textContent = zoomed === 0 ? "" : "Zoomed into " + t.label(zoomed) + " (" + t.figures(zoomed) + ")";
    }
  }

  function zoomTo(i) {
    zoomed = i;
    hideTip();
    drawFlame();
  }

  if (flameBox && flameTree) {
    flameBox.addEventListener("click", function (ev) {
      var node = ev.target.closest(".fn");
      if (!node) {
        return;
      }
      var i = parseInt(node.getAttribute("data-i"), 10);
      // a click on the zoomed node zooms back out to its caller
      zoomTo(i === zoomed ? Math.max(flameTree.c.parent[i], 0) : i);
    });
    flameBox.addEventListener("mousemove", function (ev) {
      var node = ev.target.closest(".fn");
      if (!node) {
        hideTip();
        return;
      }
      showTip(flameTree.details(parseInt(node.getAttribute("data-i"), 10)), ev);
    });
    flameBox.addEventListener("mouseleave", hideTip);
    var reset = document.getElementById("flame-reset");
    if (reset) {
      reset.addEventListener("click", function () {
        zoomTo(0);
      });
    }
    var pending = 0;
    window.addEventListener("resize", function () {
      if (!pending) {
        pending = window.requestAnimationFrame(function () {
          pending = 0;
          drawFlame();
        });
      }
    });
  }

  // ------------------------------------------------------------------------------------------ trees

  function treeItem(t, i) {
    var li = el("li");
    li.setAttribute("role", "treeitem");
    li.setAttribute("data-i", String(i));
    var row = el("div", "node");
    if (t.kids[i].length) {
      var tog = el("button", "tog", "▸");
      tog.type = "button";
      tog.setAttribute("aria-expanded", "false");
      tog.setAttribute("aria-label", "expand");
      row.appendChild(tog);
      li.setAttribute("aria-expanded", "false");
    } else {
      row.appendChild(el("span", "tog leaf"));
    }
    var share = el("span", "share");
    var bar = el("span", "bar" + (t.delta ? " diff" : ""));
    bar.style.width = Math.min(t.size[i] / (t.size[0] || 1) * 100, 100) + "%";
    share.appendChild(bar);
    row.appendChild(share);
    var fig = el("span", "fig", t.figures(i));
    if (t.delta) {
      var d = t.c.after_bytes[i] - t.c.before_bytes[i];
      fig.classList.add(d > 0 ? "up" : d < 0 ? "down" : "zero");
    }
    row.appendChild(fig);
    row.appendChild(el("code", "name" + (t.c.other[i] > 0 ? " other" : ""), t.label(i)));
    li.appendChild(row);
    return li;
  }

  function setOpen(t, li, open) {
    var i = parseInt(li.getAttribute("data-i"), 10);
    var tog = li.querySelector(":scope > .node > button.tog");
    if (!tog) {
      return;
    }
    var list = li.querySelector(":scope > ul");
    if (open && !list) {
      list = el("ul");
      list.setAttribute("role", "group");
      t.kids[i].forEach(function (k) {
        list.appendChild(treeItem(t, k));
      });
      li.appendChild(list);
    }
    if (list) {
      list.hidden = !open;
    }
    tog.textContent = open ? "▾" : "▸";
    tog.setAttribute("aria-expanded", String(open));
    tog.setAttribute("aria-label", open ? "collapse" : "expand");
    li.setAttribute("aria-expanded", String(open));
  }

  Object.keys(trees).forEach(function (direction) {
    var t = trees[direction];
    var box = document.getElementById("tree-" + direction);
    if (!box) {
      return;
    }
    var root = treeItem(t, 0);
    box.appendChild(root);
    setOpen(t, root, true);
    box.addEventListener("click", function (ev) {
      var tog = ev.target.closest("button.tog");
      if (tog) {
        var li = tog.closest("li");
        setOpen(t, li, li.getAttribute("aria-expanded") !== "true");
      }
    });
    box.addEventListener("mousemove", function (ev) {
      var row = ev.target.closest(".node");
      if (!row) {
        hideTip();
        return;
      }
      showTip(t.details(parseInt(row.parentNode.getAttribute("data-i"), 10)), ev);
    });
    box.addEventListener("mouseleave", hideTip);
  });

  // ------------------------------------------------------------------------------------------ tabs

  var tabs = Array.prototype.slice.call(document.querySelectorAll("#shape [role=tab]"));
  tabs.forEach(function (tab) {
    tab.addEventListener("click", function () {
      tabs.forEach(function (other) {
        var on = other === tab;
        other.setAttribute("aria-selected", String(on));
        other.tabIndex = on ? 0 : -1;
        document.getElementById(other.getAttribute("aria-controls")).hidden = !on;
      });
      if (tab.getAttribute("aria-controls") === "panel-flame") {
        drawFlame();
      }
    });
  });

  // ------------------------------------------------------------------------------------------ stacks

  function stackText(key) {
    var s = page.stacks[key];
    if (!s) {
      return null;
    }
    var lines = s.frames.map(function (k) {
      return names[k];
    });
    if (s.omitted) {
      lines.push("… " + plural(s.omitted, "more frame", "more frames") + " not shown");
    }
    return lines.join("\n");
  }

  function copyFallback(text) {
    // execCommand copies the selection of a focused text field: used where the Clipboard API is missing or
    // refused (a page opened from disk in some browsers, or without the permission)
    var area = el("textarea", "offscreen");
    area.value = text;
    area.setAttribute("readonly", "");
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try {
      ok = document.execCommand("copy");
    } catch (e) {
      ok = false;
    }
    document.body.removeChild(area);
    return ok;
  }

  function copied(button, ok, how) {
    var status = button.parentNode.querySelector(".copy-status");
    if (status) {
      status.textContent = ok ? "Copied." : "Copying failed: select the frames above instead.";
    }
    button.setAttribute("data-copied", ok ? how : "no");
  }

  document.addEventListener("click", function (ev) {
    var button = ev.target.closest && ev.target.closest("button.copy-stack");
    if (!button) {
      return;
    }
    ev.preventDefault();
    var text = stackText(button.getAttribute("data-stack"));
    if (text === null) {
      copied(button, false, "");
      return;
    }
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(function () {
        copied(button, true, "clipboard");
      }, function () {
        copied(button, copyFallback(text), "fallback");
      });
    } else {
      copied(button, copyFallback(text), "fallback");
    }
  });

  // ------------------------------------------------------------------------------------------ search

  var search = document.getElementById("stack-search");
  var table = document.getElementById("group-table");
  if (search && table) {
    var hay = null;

    var haystacks = function () {
      if (hay === null) {
        hay = new Map();
        Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
          var s = page.stacks["g" + row.getAttribute("data-rank")];
          var texts = s ? s.frames.map(function (k) {
            return names[k];
          }) : [];
          if (s) {
            texts.push(names[s.label]);
          }
          hay.set(row, texts.join("\n").toLowerCase());
        });
      }
      return hay;
    };

    var count = document.getElementById("search-count");
    var apply = function () {
      query = search.value.trim().toLowerCase();
      var shown = 0;
      var all = 0;
      haystacks().forEach(function (text, row) {
        var hit = !query || text.indexOf(query) >= 0;
        row.hidden = !hit;
        shown += hit ? 1 : 0;
        all += 1;
      });
      if (count) {
        count.textContent = query ? shown + " of " + all + " call stacks match" : "";
      }
      drawFlame();
    };
    search.addEventListener("input", apply);
    if (search.value) {
      apply();
    }
  }

  Array.prototype.forEach.call(document.querySelectorAll(".views-js"), function (e) {
    e.hidden = false;
  });
  drawFlame();
})();
