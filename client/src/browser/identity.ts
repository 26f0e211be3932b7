// Where a browser tab kept its node key before the node moved into a
// SharedWorker (localStorage, `privkey:<hex>`). A page that still finds one
// hands it to the worker once (BrowserNodeClient) and removes it, so the
// same machine carries on with its key in the worker's IndexedDB.
export const BROWSER_KEY_ITEM = "trellis.node.privkey";
