// The portal's one script: reading a chart's bars aloud and on hover. The
// page works without it; nothing is fetched.
(function () {
  "use strict";
  document.querySelectorAll(".meter").forEach(function (card) {
    var out = card.querySelector(".readout");
    card.querySelectorAll(".chart .point").forEach(function (p) {
      var show = function () {
        card.querySelectorAll(".chart .point.active").forEach(function (a) { a.classList.remove("active"); });
        p.classList.add("active");
        var d = new Date(p.dataset.day + "T00:00:00Z");
        out.textContent = d.toLocaleDateString(undefined, { weekday: "short", day: "numeric", month: "short", timeZone: "UTC" }) +
          ": " + Number(p.dataset.quantity).toLocaleString();
      };
      p.addEventListener("mouseenter", show);
      p.addEventListener("click", show);
    });
  });
})();
