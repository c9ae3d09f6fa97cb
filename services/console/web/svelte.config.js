// Defaults: Svelte 5 runes, TypeScript in <script lang="ts"> (type annotations only), CSS emitted to files.
export default {};
