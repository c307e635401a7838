/** Plugin navigation and routes: GET /api/plugins once signed in, rendered through the page registry. */
import { createContext, lazy, Suspense, useContext, useEffect, useMemo, useState, type ComponentType } from "react";
import { Route } from "react-router-dom";
import { ErrorBox, Loading } from "../components/ui";
import { http } from "./http";
import { PLUGIN_PAGES, type PluginList, type UiContribution } from "./index";

export interface PluginUiState {
  contributions: UiContribution[];
  error: unknown;
}

export const PluginUiContext = createContext<PluginUiState>({ contributions: [], error: null });

/** Loads the UI contributions of the loaded plugins (none when signed out or plugins are off). */
export function usePluginUi(signedIn: boolean): PluginUiState {
  const [state, setState] = useState<PluginUiState>({ contributions: [], error: null });
  useEffect(() => {
    if (!signedIn) {
      setState({ contributions: [], error: null });
      return;
    }
    let live = true;
    http.get<PluginList>("/api/plugins").then(
      (list) => live && setState({ contributions: list.items.flatMap((p) => p.ui).sort((a, b) => a.order - b.order || a.label.localeCompare(b.label)), error: null }),
      (error: unknown) => live && setState({ contributions: [], error }),
    );
    return () => {
      live = false;
    };
  }, [signedIn]);
  return state;
}

/** Nav entries for the layout. */
export function usePluginNav(): { to: string; label: string; end: boolean }[] {
  const { contributions } = useContext(PluginUiContext);
  return contributions.map((c) => ({ to: c.path, label: c.label, end: false }));
}

function ScriptPage({ src }: { src: string }) {
  const Page = useMemo(() => lazy(() => import(/* @vite-ignore */ src) as Promise<{ default: ComponentType }>), [src]);
  return (
    <Suspense fallback={<Loading />}>
      <Page />
    </Suspense>
  );
}

function PluginPage({ c }: { c: UiContribution }) {
  const Page = PLUGIN_PAGES[c.page];
  if (Page) return <Page />;
  if (c.script) return <ScriptPage src={c.script} />;
  return <ErrorBox error={new Error(`The ${c.plugin} plugin's page "${c.page}" is not part of this UI build.`)} />;
}

/** <Route> elements for every contribution, to place inside the layout route. */
export function pluginRoutes(contributions: UiContribution[]) {
  return contributions.map((c) => <Route key={c.id} path={`${c.path.replace(/^\//, "")}/*`} element={<PluginPage c={c} />} />);
}
