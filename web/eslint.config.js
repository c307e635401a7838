// ESLint (flat config): TypeScript's recommended rules and the React hooks rules, run by
// `npm run lint` and by scripts/test.sh. An eslint-disable comment must say why after "--".
import comments from "@eslint-community/eslint-plugin-eslint-comments";
import js from "@eslint/js";
import reactHooks from "eslint-plugin-react-hooks";
import globals from "globals";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", "src/api/schema.d.ts"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ["src/**/*.{ts,tsx}"],
    languageOptions: { globals: { ...globals.browser } },
    plugins: { "react-hooks": reactHooks, "eslint-comments": comments },
    rules: {
      "eslint-comments/require-description": "error",
      "react-hooks/rules-of-hooks": "error",
      // useAsync/useLiveAsync take a deps list like useEffect: check it the same way.
      "react-hooks/exhaustive-deps": ["error", { additionalHooks: "^(useAsync|useLiveAsync)$" }],
    },
  },
  {
    files: ["vite.config.ts", "scripts/**/*.{js,mjs}", "eslint.config.js"],
    languageOptions: { globals: { ...globals.node } },
  },
  { linterOptions: { reportUnusedDisableDirectives: "error" } },
);
