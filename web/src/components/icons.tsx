/** Small line icons drawn in SVG (emoji need a colour-emoji font, which many Linux desktops and headless browsers lack: they showed as empty boxes). */

const common = { width: 14, height: 14, viewBox: "0 0 16 16", fill: "none", stroke: "currentColor", strokeWidth: 1.5, "aria-hidden": true } as const;

export function CalendarIcon() {
  return (
    <svg {...common} className="icon">
      <rect x="2" y="3" width="12" height="11" rx="1.5" />
      <path d="M2 6.5h12M5 1.5v3M11 1.5v3" />
    </svg>
  );
}

export function FolderIcon() {
  return (
    <svg {...common} className="icon">
      <path d="M1.75 4.25a1 1 0 0 1 1-1h3.5l1.5 1.5h5.5a1 1 0 0 1 1 1v6.5a1 1 0 0 1-1 1h-10.5a1 1 0 0 1-1-1z" />
    </svg>
  );
}
