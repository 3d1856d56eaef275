// The terminal panel: an xterm.js view bound to a `terminal` session; keystrokes go out as terminalInput, the pty's
// output comes back as `terminal` messages, and the size follows the panel.
import { FitAddon } from "@xterm/addon-fit"
import { Terminal } from "@xterm/xterm"
import type { SagewsClient } from "./connection.ts"
import type { ClientSession } from "./session.ts"

export class TerminalPanel {
  readonly root: HTMLElement
  private readonly term: Terminal
  private readonly fit = new FitAddon()
  private session: ClientSession | undefined
  private readonly client: SagewsClient
  private readonly onNote: (text: string) => void

  constructor(client: SagewsClient, parent: HTMLElement, onNote: (text: string) => void) {
    this.client = client
    this.onNote = onNote
    this.root = document.createElement("div")
    this.root.className = "terminal"
    parent.append(this.root)
    this.term = new Terminal({ fontSize: 13, convertEol: false, cursorBlink: true, scrollback: 2000 })
    this.term.loadAddon(this.fit)
    this.term.open(this.root)
    this.fit.fit()
    this.term.onData((data) => this.session?.terminalInput(data))
    this.term.onResize(({ cols, rows }) => this.session?.terminalResize(cols, rows))
    window.addEventListener("resize", () => this.fit.fit())
  }

  async start(): Promise<void> {
    if (this.session !== undefined && this.session.ended === undefined) return this.term.focus()
    this.term.write("\x1b[2mopening a terminal…\x1b[0m\r\n")
    try {
      const session = await this.client.open("terminal", { cols: this.term.cols, rows: this.term.rows })
      this.session = session
      session.onOutput((event) => {
        if (event.msg.kind === "terminal") this.term.write(event.msg.data)
      })
      session.onEnded((ended) => {
        this.term.write(`\r\n\x1b[31m[terminal ended: ${ended.message}]\x1b[0m\r\n`)
        this.onNote(`The terminal ended: ${ended.message}`)
      })
      this.term.focus()
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error)
      this.term.write(`\x1b[31m${message}\x1b[0m\r\n`)
      this.onNote(message)
    }
  }

  show(visible: boolean): void {
    this.root.hidden = !visible
    if (visible) {
      this.fit.fit()
      void this.start()
    }
  }
}
