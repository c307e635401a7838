/** The projects plugin's pages, mounted at /projects/*: list, project (board, list, Gantt), work item. */
import { Route, Routes } from "react-router-dom";
import { ProjectListPage } from "./ProjectListPage";
import { ProjectPage } from "./ProjectPage";
import { WorkItemPage } from "./WorkItemPage";

export function ProjectsSection() {
  return (
    <Routes>
      <Route index element={<ProjectListPage />} />
      <Route path="items/:itemId" element={<WorkItemPage />} />
      <Route path=":projectId" element={<ProjectPage />} />
    </Routes>
  );
}
