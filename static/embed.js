// sagews embed loader: <script src="https://SAGEWS/embed.js"></script> turns each <div data-sagews>code</div>
// into a cell that evaluates in place. Loads the bundle and its styles from the same origin as this script.
(function () {
  var me = document.currentScript;
  var origin = new URL(me ? me.src : "/embed.js", location.href).origin;
  window.SAGEWS_ORIGIN = origin;
  var css = document.createElement("link");
  css.rel = "stylesheet";
  css.href = origin + "/build/embed.css";
  document.head.appendChild(css);
  var js = document.createElement("script");
  js.src = origin + "/build/embed.js";
  js.dataset.origin = origin;
  document.head.appendChild(js);
})();
