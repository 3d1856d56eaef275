// HTML from a cell, shown in an `<iframe sandbox="allow-scripts" srcdoc>`: its scripts run in an opaque origin, so
// they cannot reach the page, its cookies, its storage or its connection. The frame reports its height by postMessage.
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
