// Bundles src/ and its npm dependencies into the one ES module
// componentize-js takes. WIT imports (`wasi:…`) are the component's own
// imports and stay as they are.
export default {
  input: "src/index.ts",
  external: [/^wasi:/],
  output: { file: "dist/index.js", format: "esm" },
};
