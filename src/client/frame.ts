// HTML from a cell, shown in an `<iframe sandbox="allow-scripts" srcdoc>`: its scripts run in an opaque origin, so
// they cannot reach the page, its cookies, its storage or its connection. The frame reports its height by postMessage.
// A Sage 3-D scene goes the other way: posted into a frame of the 3-D viewer page, sandboxed the same.
/** Tallest a frame may make itself (CSS px): its content is untrusted, and a larger one scrolls inside the frame. */
export const MAX_FRAME_HEIGHT = 10_000

/**
 * Runs inside each frame and posts its content height to the parent as a bare number. The page's CSP allows
 * exactly this text by hash (conf/nginx.conf.template): change it and the hash there, or frames stay 150 px tall.
 */
export const FRAME_SIZE_SCRIPT =
  `new ResizeObserver(function(){parent.postMessage(Math.ceil(document.documentElement.getBoundingClientRect().height),"*")}).observe(document.documentElement)`

/** The frame's own styles: the page's look for plain markup, no margin to measure. */
const FRAME_STYLE = "html{font-family:system-ui,sans-serif;font-size:14px;color:#1d2329;overflow-wrap:anywhere}body{margin:0;display:flow-root}"

const frames = new Set<HTMLIFrameElement>()

/** A height for the frame that sent `event`, if it came from one of ours and is a number; else undefined. */
const heightFrom = (event: MessageEvent): { frame: HTMLIFrameElement; height: number } | undefined => {
  if (typeof event.data !== "number" || !Number.isFinite(event.data) || event.source === null) return undefined
  for (const frame of frames) {
    if (!frame.isConnected) frames.delete(frame)
    else if (frame.contentWindow === event.source) return { frame, height: Math.min(Math.max(event.data, 0), MAX_FRAME_HEIGHT) }
  }
  return undefined
}

let listening = false
const listen = (): void => {
  if (listening) return
  listening = true
  window.addEventListener("message", (event) => {
    const sized = heightFrom(event)
    if (sized !== undefined) sized.frame.style.height = `${sized.height}px`
  })
}

/** A sandboxed frame showing `html`; it takes its content's height once it is in the document. */
export const htmlFrame = (html: string, className: string): HTMLIFrameElement => {
  listen()
  const frame = document.createElement("iframe")
  frame.className = className
  // allow-scripts alone: no allow-same-origin (the frame's origin is opaque), no top navigation, popups, forms or modals
  frame.setAttribute("sandbox", "allow-scripts")
  frame.setAttribute("referrerpolicy", "no-referrer")
  frame.title = "cell output"
  frame.srcdoc = `<!doctype html><html><head><meta charset="utf-8"><style>${FRAME_STYLE}</style><script>${FRAME_SIZE_SCRIPT}</script></head><body>${html}</body></html>`
  frames.add(frame)
  return frame
}

/** The display MIME type of a Sage 3-D scene (src/worker/sagedisplay.py): its data is the scene as JSON text. */
export const THREEJS_MIME = "application/vnd.sagews.threejs+json"

/**
 * Where the 3-D viewer (static/three/viewer.html) is: on the page, its own server; an embed on another site sets the
 * sagews server's origin (the one it connects to) with `setViewerOrigin`.
 */
let viewerOrigin = ""
export const setViewerOrigin = (origin: string): void => {
  viewerOrigin = origin.replace(/\/+$/, "")
}

/**
 * A sandboxed frame of the 3-D viewer drawing `scene`. The viewer is a page of the sagews server, but with
 * allow-scripts alone its origin is opaque, as an HTML output's is: the scene, untrusted, is posted to it (to "*",
 * the only target an opaque origin has) each time it loads, and the viewer reads it as data, never as markup.
 */
export const threejsFrame = (scene: string, className: string): HTMLIFrameElement => {
  const frame = document.createElement("iframe")
  frame.className = className
  frame.setAttribute("sandbox", "allow-scripts")
  frame.setAttribute("referrerpolicy", "no-referrer")
  frame.title = "3-D plot: drag to rotate, scroll to zoom"
  frame.addEventListener("load", () => frame.contentWindow?.postMessage(scene, "*"))
  frame.src = `${viewerOrigin}/three/viewer.html`
  return frame
}
