/** The pipelines plugin's pages, mounted at /pipelines/*: the list and one pipeline's DAG. */
import { Route, Routes } from "react-router-dom";
import { PipelineListPage } from "./PipelineListPage";
import { PipelinePage } from "./PipelinePage";

export function PipelinesSection() {
  return (
    <Routes>
      <Route index element={<PipelineListPage />} />
      <Route path=":pipelineId" element={<PipelinePage />} />
    </Routes>
  );
}
