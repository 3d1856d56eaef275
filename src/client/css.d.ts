// Lets TypeScript accept the CSS imports that esbuild bundles into app.css and embed.css.
declare module "*.css"
