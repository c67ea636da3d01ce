// uPlot's browser build and style sheet, imported as text (Bun's `with { type: 'text' }`), so
// that the dashboard serves them from the package, or from inside a compiled binary.
declare module 'uplot/dist/uPlot.iife.min.js' {
  const text: string
  export default text
}
declare module 'uplot/dist/uPlot.min.css' {
  const text: string
  export default text
}
