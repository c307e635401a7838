/** Registry of plugin pages: UiContribution.page names (from GET /api/plugins) → React components.
 *
 * A built-in plugin ships its pages here; each page handles its own sub-routes (it is mounted
 * at `<contribution.path>/*`). A contribution whose page is unknown is shown as such, never
 * silently dropped.
 */
import type { ComponentType } from "react";
import { PipelinesSection } from "./pipelines/PipelinesSection";
import { ProjectsSection } from "./projects/ProjectsSection";
import { ExperimentsSection } from "./research/ExperimentsSection";

export interface UiContribution {
  id: string;
  label: string;
  path: string;
  page: string;
  plugin: string;
  icon: string;
  order: number;
  script: string | null;
}

export interface PluginList {
  enabled: boolean;
  items: { name: string; version: string; source: string; hooks: string[]; ui: UiContribution[] }[];
  errors: string[];
}

export const PLUGIN_PAGES: Record<string, ComponentType> = {
  "pipelines.list": PipelinesSection,
  "projects.list": ProjectsSection,
  "research.experiments": ExperimentsSection,
};
