// The 3-D viewer's reading of its one message: the scene a Sage cell made (application/vnd.sagews.threejs+json, what
// src/worker/sagedisplay.py parses out of Sage's three.js page), as untrusted JSON, into a scene with only known fields.
/* exported sagewsReadScene */
var sagewsReadScene = (function () {
  "use strict"

  /** Past this, a message is not a scene (the worker's own limit on one output message is 8 MiB). */
  var MAX_MESSAGE_CHARS = 16 * 1024 * 1024
  var MAX_TEXT_CHARS = 1000

  var isObject = function (v) { return typeof v === "object" && v !== null && !Array.isArray(v) }
  var list = function (v) { return Array.isArray(v) ? v : [] }
  var num = function (v, fallback) { return typeof v === "number" && isFinite(v) ? v : fallback }
  var clamp = function (v, low, high, fallback) { return Math.min(Math.max(num(v, fallback), low), high) }
  var bool = function (v, fallback) { return typeof v === "boolean" ? v : fallback }
  var text = function (v) { return typeof v === "string" ? v.slice(0, MAX_TEXT_CHARS) : typeof v === "number" ? String(v) : "" }
  // Sage writes #rrggbb; a style may name a CSS color. Anything else is not handed to three.js's parser.
  var COLOR = /^(#[0-9a-fA-F]{3}|#[0-9a-fA-F]{6}|[a-zA-Z]{1,32})$/
  var color = function (v, fallback) { return typeof v === "string" && COLOR.test(v) ? v : fallback }
  // A coordinate that is not a finite number (Sage writes null for NaN) makes the point unusable: it is left out.
  var xyz = function (v) {
    if (!isObject(v) || typeof v.x !== "number" || typeof v.y !== "number" || typeof v.z !== "number") return null
    return isFinite(v.x) && isFinite(v.y) && isFinite(v.z) ? { x: v.x, y: v.y, z: v.z } : null
  }
  var triple = function (v) { return Array.isArray(v) && v.length === 3 ? xyz({ x: v[0], y: v[1], z: v[2] }) : null }
  var keyframe = function (v) { return Math.floor(clamp(v, -1, 100000, -1)) }

  var textStyle = function (s) {
    if (!isObject(s)) s = {}
    var family = Array.isArray(s.fontFamily) ? s.fontFamily.map(text).filter(Boolean).slice(0, 10) : [text(s.fontFamily) || "monospace"]
    return {
      color: color(s.color, "black"),
      fontSize: clamp(s.fontSize, 1, 200, 14),
      fontFamily: family.length > 0 ? family : ["monospace"],
      fontStyle: /^(normal|italic|oblique)$/.test(s.fontStyle) ? s.fontStyle : "normal",
      fontWeight: /^(normal|bold|bolder|lighter|[1-9]00)$/.test(String(s.fontWeight)) ? String(s.fontWeight) : "normal",
      opacity: clamp(s.opacity, 0, 1, 1),
    }
  }

  var options = function (o) {
    if (!isObject(o)) o = {}
    var aspect = list(o.aspectRatio).map(function (a) { return clamp(a, 1e-6, 1e6, 1) })
    var labels = Array.isArray(o.axesLabels) && o.axesLabels.length === 3 ? o.axesLabels.map(text) : false
    var styles = Array.isArray(o.axesLabelsStyle) && o.axesLabelsStyle.length === 3 ? o.axesLabelsStyle.map(textStyle) : [textStyle({}), textStyle({}), textStyle({})]
    var vp = Array.isArray(o.viewpoint) && o.viewpoint.length === 2 ? { axis: triple(o.viewpoint[0]), angle: num(o.viewpoint[1], null) } : null
    return {
      animate: bool(o.animate, false),
      aspectRatio: aspect.length === 3 ? aspect : [1, 1, 1],
      axes: bool(o.axes, false),
      axesLabels: bool(o.frame, true) ? labels : false,
      axesLabelsStyle: styles,
      decimals: Math.floor(clamp(o.decimals, 0, 10, 2)),
      delay: clamp(o.delay, 1, 100000, 20),
      frame: bool(o.frame, true),
      loop: bool(o.loop, true),
      projection: o.projection === "orthographic" ? "orthographic" : "perspective",
      theme: o.theme === "dark" ? "dark" : "light",
      viewpoint: vp !== null && vp.axis !== null && vp.angle !== null && (vp.axis.x !== 0 || vp.axis.y !== 0 || vp.axis.z !== 0) ? vp : null,
    }
  }

  /** The bounding box, made sensible: corners in order, and a flat side one unit thick each way (as Sage's page does). */
  var bounds = function (b) {
    var low = list(b).length === 2 ? xyz(b[0]) : null
    var high = list(b).length === 2 ? xyz(b[1]) : null
    if (low === null || high === null) { low = { x: -1, y: -1, z: -1 }; high = { x: 1, y: 1, z: 1 } }
    ;["x", "y", "z"].forEach(function (k) {
      if (low[k] > high[k]) { var t = low[k]; low[k] = high[k]; high[k] = t }
      if (low[k] === high[k]) { low[k] -= 1; high[k] += 1 }
    })
    return [low, high]
  }

  var surface = function (s) {
    if (!isObject(s)) return null
    var vertices = list(s.vertices).map(xyz)
    var faces = []
    var faceColors = Array.isArray(s.faceColors) ? [] : null
    list(s.faces).forEach(function (f, i) {
      // a face is a polygon of vertex indices; one that names a missing or unusable vertex is left out
      if (!Array.isArray(f) || f.length < 3) return
      for (var j = 0; j < f.length; j++) if (!Number.isInteger(f[j]) || f[j] < 0 || f[j] >= vertices.length || vertices[f[j]] === null) return
      faces.push(f.slice())
      if (faceColors !== null) faceColors.push(color(s.faceColors[i], "white"))
    })
    if (faces.length === 0) return null
    return {
      vertices: vertices.map(function (v) { return v === null ? { x: 0, y: 0, z: 0 } : v }),
      faces: faces,
      faceColors: faceColors,
      color: color(s.color, "#6666ff"),
      opacity: clamp(s.opacity, 0, 1, 1),
      singleSide: bool(s.singleSide, false),
      depthWrite: typeof s.depthWrite === "boolean" ? s.depthWrite : null,
      useFlatShading: bool(s.useFlatShading, false),
      renderOrder: Math.floor(clamp(s.renderOrder, -1e6, 1e6, 0)),
      showMeshGrid: bool(s.showMeshGrid, false),
      linewidth: clamp(s.linewidth, 0.1, 100, 1),
      keyframe: keyframe(s.keyframe),
    }
  }

  var line = function (l) {
    if (!isObject(l)) return null
    var points = list(l.points).map(triple).filter(function (p) { return p !== null })
    if (points.length < 2) return null
    return { points: points, color: color(l.color, "#6666ff"), opacity: clamp(l.opacity, 0, 1, 1), linewidth: clamp(l.linewidth, 0.1, 100, 1), keyframe: keyframe(l.keyframe) }
  }

  var point = function (p) {
    var at = isObject(p) ? triple(p.point) : null
    if (at === null) return null
    return { point: at, size: clamp(p.size, 0.1, 1000, 5), color: color(p.color, "#6666ff"), opacity: clamp(p.opacity, 0, 1, 1), keyframe: keyframe(p.keyframe) }
  }

  var label = function (t) {
    var at = xyz(t)
    if (at === null) return null
    var style = textStyle(t)
    style.text = text(t.text)
    style.x = at.x; style.y = at.y; style.z = at.z
    style.keyframe = keyframe(t.keyframe)
    return style
  }

  var light = function (l) {
    var at = xyz(l)
    return at === null ? null : { x: at.x, y: at.y, z: at.z, color: color(l.color, "#7f7f7f"), parent: l.parent === "camera" ? "camera" : "scene" }
  }

  var present = function (v) { return v !== null }

  /** The scene in `data` (the JSON text of one scene), or null when it is not one: then the viewer ignores the message. */
  return function (data) {
    if (typeof data !== "string" || data.length > MAX_MESSAGE_CHARS) return null
    var raw
    try { raw = JSON.parse(data) } catch (e) { return null }
    if (!isObject(raw) || !Array.isArray(raw.surfaces) || !Array.isArray(raw.lines) || !Array.isArray(raw.points) || !Array.isArray(raw.texts)) return null
    return {
      options: options(raw.options),
      bounds: bounds(raw.bounds),
      lights: list(raw.lights).map(light).filter(present).slice(0, 8),
      ambient: color(isObject(raw.ambient) ? raw.ambient.color : null, "#7f7f7f"),
      texts: raw.texts.map(label).filter(present),
      points: raw.points.map(point).filter(present),
      lines: raw.lines.map(line).filter(present),
      surfaces: raw.surfaces.map(surface).filter(present),
    }
  }
})()
