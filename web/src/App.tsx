/** Routes and the sign-in gate: everything but /login needs a session. */
import { useCallback, useEffect, useMemo, useState } from "react";
import { Navigate, Route, Routes, useLocation, useNavigate } from "react-router-dom";
import { api, onUnauthorized, ApiError } from "./api/client";
import type { Me } from "./api/types";
import { Layout } from "./components/Layout";
import { ErrorBox, Loading } from "./components/ui";
import { AuthContext } from "./state/contexts";
import { LiveProvider } from "./state/LiveProvider";
import { LoginPage } from "./pages/LoginPage";
import { DashboardPage } from "./pages/DashboardPage";
import { NodesPage } from "./pages/NodesPage";
import { NodeDetailPage } from "./pages/NodeDetailPage";
import { TasksPage } from "./pages/TasksPage";
import { TaskDetailPage } from "./pages/TaskDetailPage";
import { SubmitTaskPage } from "./pages/SubmitTaskPage";
import { FilesPage } from "./pages/FilesPage";
import { AdminPage } from "./pages/AdminPage";
import { SecretsPage } from "./pages/SecretsPage";
import { NotFoundPage } from "./pages/NotFoundPage";
import { PluginUiContext, pluginRoutes, usePluginUi } from "./plugins/PluginUi";

type Session = { phase: "checking" } | { phase: "anonymous" } | { phase: "error"; error: unknown } | { phase: "signed-in"; user: Me };

export function App() {
  const [session, setSession] = useState<Session>({ phase: "checking" });
  const navigate = useNavigate();
  const location = useLocation();

  const check = useCallback(() => {
    setSession({ phase: "checking" });
    api.me().then(
      (user) => setSession({ phase: "signed-in", user }),
      (err: unknown) => setSession(err instanceof ApiError && err.status === 401 ? { phase: "anonymous" } : { phase: "error", error: err }),
    );
  }, []);

  useEffect(() => {
    check();
    onUnauthorized(() => setSession({ phase: "anonymous" }));
    return () => onUnauthorized(null);
  }, [check]);

  const signOut = useCallback(async () => {
    try {
      await api.logout();
    } finally {
      setSession({ phase: "anonymous" });
      navigate("/login");
    }
  }, [navigate]);

  const auth = useMemo(() => (session.phase === "signed-in" ? { user: session.user, signOut } : null), [session, signOut]);
  const pluginUi = usePluginUi(session.phase === "signed-in");

  if (session.phase === "checking") return <Loading label="Connecting to UniDesk…" />;
  if (session.phase === "error") {
    return (
      <div className="center-page">
        <h1>UniDesk</h1>
        <ErrorBox error={session.error} onRetry={check} />
      </div>
    );
  }
  if (session.phase === "anonymous" || !auth) {
    const from = location.pathname === "/login" ? "/" : location.pathname + location.search;
    return (
      <Routes>
        <Route
          path="/login"
          element={
            <LoginPage
              onSignedIn={(user) => {
                setSession({ phase: "signed-in", user });
                const next = new URLSearchParams(location.search).get("next");
                navigate(next && next.startsWith("/") && !next.startsWith("//") ? next : "/", { replace: true });
              }}
            />
          }
        />
        <Route path="*" element={<Navigate to={`/login?next=${encodeURIComponent(from)}`} replace />} />
      </Routes>
    );
  }
  return (
    <AuthContext.Provider value={auth}>
      <PluginUiContext.Provider value={pluginUi}>
      <LiveProvider>
        <Routes>
          <Route path="/login" element={<Navigate to="/" replace />} />
          <Route element={<Layout />}>
            <Route index element={<DashboardPage />} />
            <Route path="nodes" element={<NodesPage />} />
            <Route path="nodes/:id" element={<NodeDetailPage />} />
            <Route path="tasks" element={<TasksPage />} />
            <Route path="tasks/new" element={<SubmitTaskPage />} />
            <Route path="tasks/:id" element={<TaskDetailPage />} />
            <Route path="files" element={<FilesPage />} />
            <Route path="secrets" element={<SecretsPage />} />
            <Route path="admin" element={<AdminPage />} />
            {pluginRoutes(pluginUi.contributions)}
            <Route path="*" element={<NotFoundPage />} />
          </Route>
        </Routes>
      </LiveProvider>
      </PluginUiContext.Provider>
    </AuthContext.Provider>
  );
}
