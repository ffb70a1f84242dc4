// The routing rule form's "Add a target" button: a copy of the last row, emptied and renumbered.
// (A static file: the admin's Content-Security-Policy allows no inline script.)
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll(".xr-targets").forEach(function (box) {
    var name = box.dataset.name, max = parseInt(box.dataset.max, 10);
    var counter = box.querySelector('input[name="' + name + '-rows"]');
    box.querySelector(".xr-add-target").addEventListener("click", function () {
      var rows = box.querySelectorAll("tr.xr-target");
      var count = rows.length;
      if (count >= max) return;
      var row = rows[count - 1].cloneNode(true);
      row.querySelector(".xr-index").textContent = String(count + 1);
      row.querySelectorAll("select, input").forEach(function (field) {
        field.name = field.name.replace(/-\d+-/, "-" + count + "-");
        field.value = "";
      });
      rows[count - 1].parentNode.appendChild(row);
      counter.value = String(count + 1);
    });
  });
});
