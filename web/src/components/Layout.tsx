/** App shell: skip link, navigation (sidebar on laptops, top bar on phones), degraded banner, page outlet. */
import { useContext, useEffect, useRef, useState } from "react";
import { NavLink, Outlet, useLocation } from "react-router-dom";
import { AuthContext, LiveContext } from "../state/contexts";
import { DegradedBanner, LiveIndicator } from "./DegradedBanner";
import { TIME_ZONE_LABEL, TIME_ZONE_NARROW } from "../time";
import { usePluginNav } from "../plugins/PluginUi";

const NAV = [
  { to: "/", label: "Dashboard", end: true },
  { to: "/tasks", label: "Tasks", end: false },
  { to: "/tasks/new", label: "Submit task", end: true },
  { to: "/nodes", label: "Nodes", end: false },
  { to: "/files", label: "Files", end: false },
  { to: "/secrets", label: "Secrets", end: false },
];

export function Layout() {
  const auth = useContext(AuthContext)!;
  const [menuOpen, setMenuOpen] = useState(false);
  const { feedState, health } = useContext(LiveContext);
  // While live updates are down, what is on screen is marked stale (dimmed) as well as bannered.
  const stale = feedState.status === "down" || health.health?.unreachable === true || health.health?.checks?.event_stream === "unreachable";
  const location = useLocation();
  const mainRef = useRef<HTMLElement>(null);
  const menuButton = useRef<HTMLButtonElement>(null);
  // A link in the navigation opened another page: focus goes to the page (its start is read out
  // next), not left on a link of a closed phone menu, where it fell back to the document body.
  const lastPath = useRef(location.pathname);
  useEffect(() => {
    if (lastPath.current === location.pathname) return;
    lastPath.current = location.pathname;
    const active = document.activeElement;
    if (!active || active === document.body || active.closest("#main-nav")) mainRef.current?.focus({ preventScroll: true });
  }, [location.pathname]);
  // Escape closes the phone menu and gives focus back to its button.
  useEffect(() => {
    if (!menuOpen) return;
    const onKey = (e: KeyboardEvent) => {
      if (e.key !== "Escape") return;
      setMenuOpen(false);
      menuButton.current?.focus();
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, [menuOpen]);
  const nav = [...NAV, ...usePluginNav(), { to: "/admin", label: auth.user.role === "admin" ? "Admin" : "API tokens", end: false }];
  return (
    <div className="shell">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <NavLink to="/" className="brand" aria-label="UniDesk home">
          <span className="brand-mark" aria-hidden="true">
            U
          </span>
          UniDesk
        </NavLink>
        <button
          ref={menuButton}
          type="button"
          className="btn btn-ghost menu-toggle"
          aria-expanded={menuOpen}
          aria-controls="main-nav"
          onClick={() => setMenuOpen(!menuOpen)}
        >
          Menu
        </button>
        <div className="topbar-right">
          <LiveIndicator />
          <span className="tz-note" data-testid="tz-note" title="Every time on these pages is Beijing time">
            <span className="tz-long">{TIME_ZONE_LABEL}</span>
            <span className="tz-short">{TIME_ZONE_NARROW}</span>
          </span>
          <span className="user-chip" data-testid="current-user" title={`${auth.user.username} · ${auth.user.role}`}>
            {auth.user.username}
            <span className="muted"> · {auth.user.role}</span>
          </span>
          <button type="button" className="btn btn-small btn-ghost" onClick={() => void auth.signOut()}>
            Sign out
          </button>
        </div>
      </header>
      <nav id="main-nav" className={`sidenav${menuOpen ? " open" : ""}`} aria-label="Main">
        <ul>
          {nav.map((n) => (
            <li key={n.to}>
              <NavLink
                to={n.to}
                end={n.end || (n.to === "/tasks" && location.pathname === "/tasks/new")}
                onClick={() => setMenuOpen(false)}
              >
                {n.label}
              </NavLink>
            </li>
          ))}
        </ul>
      </nav>
      <main id="main" ref={mainRef} className="main" tabIndex={-1} data-stale={stale || undefined}>
        <DegradedBanner />
        <Outlet />
      </main>
    </div>
  );
}
