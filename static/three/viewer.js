// The 3-D viewer behind /three/viewer.html: waits for its parent to post one scene (scene.js reads it), then draws it
// with three.js as Sage's threejs_template.html does (frame, axes labels, lights, texts, points, lines, surfaces,
// keyframe animation) and lets the reader orbit it: drag to rotate, wheel to zoom, right-drag to pan.
(function () {
  "use strict"
  var root = document.documentElement
  // THREE.MathUtils from r113 on; Debian's r111 calls it THREE.Math
  var MathUtils = THREE.MathUtils || THREE.Math
  var MAX_LABEL_CANVAS = 4096

  window.addEventListener("message", function (event) {
    // only the page that made this frame may give it its scene, and only once: a later message is not looked at
    if (event.source !== window.parent || root.dataset.state !== "waiting") return
    var scene = sagewsReadScene(event.data)
    if (scene === null) return
    try {
      draw(scene)
      root.dataset.state = "drawn"
    } catch (error) {
      root.dataset.state = "failed"
      document.getElementById("message").textContent = "This 3-D scene cannot be shown: " + (error && error.message ? error.message : String(error))
    }
  })

  function draw(data) {
    var options = data.options
    var dark = options.theme === "dark"
    if (dark) document.body.className = "dark-theme"
    var animate = options.animate
    var width = function () { return window.innerWidth || 1 }
    var height = function () { return window.innerHeight || 1 }

    var renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true })
    renderer.setPixelRatio(window.devicePixelRatio)
    renderer.setSize(width(), height())
    renderer.setClearColor(dark ? 0 : 0xffffff, 1)
    document.body.appendChild(renderer.domElement)
    var scene = new THREE.Scene()

    var b = data.bounds
    var xRange = b[1].x - b[0].x, yRange = b[1].y - b[0].y, zRange = b[1].z - b[0].z
    var rRange = Math.sqrt(xRange * xRange + yRange * yRange)
    var a = options.aspectRatio.slice()
    var autoAspect = 2.5
    if (zRange > autoAspect * rRange && a[2] === 1) a[2] = autoAspect * rRange / zRange
    // distance from the middle to any corner of the bounding box, after the aspect ratio
    var midToCorner = Math.sqrt(a[0] * a[0] * xRange * xRange + a[1] * a[1] * yRange * yRange + a[2] * a[2] * zRange * zRange) / 2
    var xMid = (b[0].x + b[1].x) / 2, yMid = (b[0].y + b[1].y) / 2, zMid = (b[0].z + b[1].z) / 2
    var scaled = function (x, y, z) { return new THREE.Vector3(a[0] * x, a[1] * y, a[2] * z) }

    if (options.frame) {
      var box = new THREE.Geometry()
      box.vertices.push(scaled(b[0].x, b[0].y, b[0].z), scaled(b[1].x, b[1].y, b[1].z))
      scene.add(new THREE.BoxHelper(new THREE.Line(box), dark ? "white" : "black"))
    }

    var camera = options.projection === "orthographic"
      ? new THREE.OrthographicCamera(-1, 1, 1, -1, -100 * midToCorner, 100 * midToCorner)
      : new THREE.PerspectiveCamera(45, width() / height(), 0.01 * midToCorner, 100 * midToCorner)
    var fitCamera = function () {
      var aspect = width() / height()
      if (camera.isPerspectiveCamera) camera.aspect = aspect
      else {
        // the frustum fits the box's diagonal, so that the whole plot is in view at the first zoom
        camera.top = aspect > 1 ? midToCorner : midToCorner / aspect
        camera.right = aspect > 1 ? midToCorner * aspect : midToCorner
        camera.bottom = -camera.top
        camera.left = -camera.right
      }
      camera.updateProjectionMatrix()
    }
    fitCamera()
    camera.up.set(0, 0, 1)
    camera.position.copy(scaled(xMid, yMid, zMid))
    var offset = new THREE.Vector3(a[0] * xRange, a[1] * yRange, a[2] * zRange)
    if (options.viewpoint !== null) {
      var axis = new THREE.Vector3(options.viewpoint.axis.x, options.viewpoint.axis.y, options.viewpoint.axis.z).normalize()
      var q = new THREE.Quaternion().setFromAxisAngle(axis, options.viewpoint.angle * Math.PI / 180).inverse()
      offset.set(0, 0, offset.length()).applyQuaternion(q)
    }
    camera.position.add(offset)

    function addLabel(text, x, y, z, style) {
      var color = style.color
      if (dark && (color === "black" || color === "#000000")) color = "white"
      var family = style.fontFamily.map(function (f) { return /\s/.test(f) ? '"' + f.replace(/"/g, "") + '"' : f }).join(", ")
      var font = [style.fontStyle, style.fontWeight, style.fontSize + "px", family].join(" ")
      var canvas = document.createElement("canvas")
      var context = canvas.getContext("2d")
      var pixelRatio = Math.max(1, Math.round(window.devicePixelRatio))
      context.font = font
      // powers of two, so that the texture can be mipmapped
      canvas.width = Math.min(MathUtils.ceilPowerOfTwo(Math.max(1, context.measureText(text).width * pixelRatio)), MAX_LABEL_CANVAS)
      canvas.height = Math.min(MathUtils.ceilPowerOfTwo(style.fontSize * pixelRatio), MAX_LABEL_CANVAS)
      var w = canvas.width / pixelRatio, h = canvas.height / pixelRatio
      context.scale(pixelRatio, pixelRatio)
      context.fillStyle = color
      context.font = font // set again: the canvas was resized
      context.textAlign = "center"
      context.textBaseline = "middle"
      context.fillText(text, w / 2, h / 2)
      var texture = new THREE.Texture(canvas)
      texture.needsUpdate = true
      var material = { map: texture, sizeAttenuation: false, depthWrite: false }
      // opacity 1 would drop the texture's alpha, giving the text a black background
      if (style.opacity < 1) material.opacity = style.opacity
      var sprite = new THREE.Sprite(new THREE.SpriteMaterial(material))
      sprite.position.set(x, y, z)
      // Sage's own scale, so that text has the size it has in Sage's page
      var scale = options.projection === "orthographic" ? midToCorner / 256 : 1 / 625
      sprite.scale.set(scale * w, scale * h, 1)
      scene.add(sprite)
      return sprite
    }

    if (options.axesLabels !== false) {
      var al = options.axesLabels, als = options.axesLabelsStyle, d = options.decimals
      var middle = function (v) { var s = v.toFixed(d); return /^-0\.?0*$/.test(s) ? s.slice(1) : s }
      var off = 0.1 * a[1] * yRange
      addLabel(al[0] + "=" + middle(xMid), a[0] * xMid, a[1] * b[1].y + off, a[2] * b[0].z, als[0])
      addLabel(b[0].x.toFixed(d), a[0] * b[0].x, a[1] * b[1].y + off, a[2] * b[0].z, als[0])
      addLabel(b[1].x.toFixed(d), a[0] * b[1].x, a[1] * b[1].y + off, a[2] * b[0].z, als[0])
      off = 0.1 * a[0] * xRange
      addLabel(al[1] + "=" + middle(yMid), a[0] * b[1].x + off, a[1] * yMid, a[2] * b[0].z, als[1])
      addLabel(b[0].y.toFixed(d), a[0] * b[1].x + off, a[1] * b[0].y, a[2] * b[0].z, als[1])
      addLabel(b[1].y.toFixed(d), a[0] * b[1].x + off, a[1] * b[1].y, a[2] * b[0].z, als[1])
      off = 0.1 * a[1] * yRange
      addLabel(al[2] + "=" + middle(zMid), a[0] * b[1].x, a[1] * b[0].y - off, a[2] * zMid, als[2])
      addLabel(b[0].z.toFixed(d), a[0] * b[1].x, a[1] * b[0].y - off, a[2] * b[0].z, als[2])
      addLabel(b[1].z.toFixed(d), a[0] * b[1].x, a[1] * b[0].y - off, a[2] * b[1].z, als[2])
    }
    if (options.axes) scene.add(new THREE.AxesHelper(Math.max(Math.min(a[0] * b[1].x, a[1] * b[1].y, a[2] * b[1].z), 1e-6)))

    data.lights.forEach(function (l) {
      var light = new THREE.DirectionalLight(l.color, 1)
      light.position.copy(scaled(l.x, l.y, l.z))
      if (l.parent === "camera") {
        light.target.position.copy(scaled(xMid, yMid, zMid))
        scene.add(light.target)
        camera.add(light)
      } else scene.add(light)
    })
    scene.add(camera)
    scene.add(new THREE.AmbientLight(data.ambient, 1))

    // Lines thicker than 1 px, which WebGL does not draw: three.js's LineSegments2, as Sage's fat_lines.js uses
    var fatLines = []
    var fatLine = function (strip, geometry, materialOptions) {
      var positions = []
      var n = geometry.vertices.length
      geometry.vertices.forEach(function (v, i) {
        positions.push(v.x, v.y, v.z)
        if (strip && i > 0 && i < n - 1) positions.push(v.x, v.y, v.z) // a strip's inner vertices end one segment and start the next
      })
      var segments = new THREE.LineSegmentsGeometry()
      segments.setPositions(positions)
      var material = new THREE.LineMaterial(materialOptions)
      material.resolution = new THREE.Vector2(width(), height())
      var line = new THREE.LineSegments2(segments, material)
      line.computeLineDistances()
      fatLines.push(line)
      return line
    }
    var canFatLines = typeof THREE.LineSegments2 === "function"

    // each object is centred on its own bounding box and moved there, as Sage's page does (steadier transparency sorting)
    var placed = function (geometry, json, make) {
      var c = new THREE.Vector3()
      geometry.computeBoundingBox()
      geometry.boundingBox.getCenter(c)
      geometry.translate(-c.x, -c.y, -c.z)
      var mesh = make(geometry)
      mesh.position.copy(c)
      mesh.userData = { keyframe: json.keyframe }
      scene.add(mesh)
      return mesh
    }

    data.texts.forEach(function (t) {
      addLabel(t.text, a[0] * t.x, a[1] * t.y, a[2] * t.z, t).userData = { keyframe: t.keyframe }
    })

    data.points.forEach(function (p) {
      var geometry = new THREE.Geometry()
      geometry.vertices.push(scaled(p.point.x, p.point.y, p.point.z))
      var canvas = document.createElement("canvas")
      canvas.width = 128
      canvas.height = 128
      var context = canvas.getContext("2d")
      context.arc(64, 64, 64, 0, 2 * Math.PI)
      context.fillStyle = p.color
      context.fill()
      var texture = new THREE.Texture(canvas)
      texture.needsUpdate = true
      var material = new THREE.PointsMaterial({ size: camera.isOrthographicCamera ? p.size : p.size / 100, map: texture, transparent: p.opacity < 1, opacity: p.opacity, alphaTest: 0.1 })
      placed(geometry, p, function (g) { return new THREE.Points(g, material) })
    })

    data.lines.forEach(function (l) {
      var geometry = new THREE.Geometry()
      l.points.forEach(function (v) { geometry.vertices.push(scaled(v.x, v.y, v.z)) })
      var materialOptions = { color: l.color, linewidth: l.linewidth, transparent: l.opacity < 1, opacity: l.opacity }
      placed(geometry, l, function (g) {
        return l.linewidth > 1 && canFatLines ? fatLine(true, g, materialOptions) : new THREE.Line(g, new THREE.LineBasicMaterial(materialOptions))
      })
    })

    data.surfaces.forEach(function (s) {
      var geometry = new THREE.Geometry()
      s.vertices.forEach(function (v) { geometry.vertices.push(scaled(v.x, v.y, v.z)) })
      s.faces.forEach(function (f, i) {
        // a polygon as a fan of triangles
        for (var j = 0; j < f.length - 2; j++) {
          var face = new THREE.Face3(f[0], f[j + 1], f[j + 2])
          if (s.faceColors !== null) face.color.set(s.faceColors[i])
          geometry.faces.push(face)
        }
      })
      geometry.computeVertexNormals()
      var transparent = s.opacity < 1
      var material = new THREE.MeshPhongMaterial({
        side: s.singleSide ? THREE.FrontSide : THREE.DoubleSide,
        color: s.faceColors !== null ? "white" : s.color,
        vertexColors: s.faceColors !== null ? THREE.FaceColors : THREE.NoColors,
        transparent: transparent, opacity: s.opacity, shininess: 20, flatShading: s.useFlatShading,
        depthWrite: s.depthWrite !== null ? s.depthWrite : !transparent,
      })
      var mesh = placed(geometry, s, function (g) { return new THREE.Mesh(g, material) })
      if (transparent && s.renderOrder) mesh.renderOrder = s.renderOrder
      if (s.showMeshGrid) addMeshGrid(s)
    })

    function addMeshGrid(s) {
      var geometry = new THREE.Geometry()
      s.faces.forEach(function (f) {
        for (var j = 0; j < f.length; j++) {
          var k = j === f.length - 1 ? 0 : j + 1
          var v1 = s.vertices[f[j]], v2 = s.vertices[f[k]]
          // lifted a little off the surface, the opposite way on the neighbouring face, so that the grid is not hidden
          var nudge = f[j] < f[k] ? 0.0005 * zRange : -0.0005 * zRange
          geometry.vertices.push(scaled(v1.x, v1.y, v1.z + nudge), scaled(v2.x, v2.y, v2.z + nudge))
        }
      })
      var materialOptions = { color: dark ? "white" : "black", linewidth: s.linewidth }
      placed(geometry, s, function (g) {
        return s.linewidth > 1 && canFatLines ? fatLine(false, g, materialOptions) : new THREE.LineSegments(g, new THREE.LineBasicMaterial(materialOptions))
      })
    }

    var updateAnimation = animate ? animation(scene, options) : null
    function render() {
      if (updateAnimation !== null) animate = updateAnimation()
      if (animate) requestAnimationFrame(render)
      renderer.render(scene, camera)
    }

    var controls = new THREE.OrbitControls(camera, renderer.domElement)
    controls.target.copy(scaled(xMid, yMid, zMid))
    controls.addEventListener("change", function () { if (!animate) render() })
    window.addEventListener("resize", function () {
      renderer.setSize(width(), height())
      fitCamera()
      fatLines.forEach(function (line) { line.material.resolution = new THREE.Vector2(width(), height()) })
      if (!animate) render()
    })
    render()
    controls.update()
    if (!animate) render()
  }

  /**
   * Sage's keyframe animation (animate(...).interactive()): the objects of frame k are visible from k·delay to
   * (k+1)·delay hundredths of a second, looping unless options.loop is false. Returns the per-frame update, which
   * says whether to keep animating.
   */
  function animation(scene, options) {
    var frames = []
    scene.children.forEach(function (obj) {
      var k = obj.userData && obj.userData.keyframe
      if (typeof k === "number" && k >= 0) (frames[k] = frames[k] || []).push(obj)
    })
    if (frames.length < 2) return null
    var started = performance.now()
    var shown = -1
    return function () {
      var elapsed = (performance.now() - started) / 10 / options.delay
      var k = Math.floor(elapsed)
      var more = options.loop || k < frames.length - 1
      k = options.loop ? k % frames.length : Math.min(k, frames.length - 1)
      if (k !== shown) {
        frames.forEach(function (objects, i) { (objects || []).forEach(function (obj) { obj.visible = i === k }) })
        shown = k
      }
      return more
    }
  }
})()
