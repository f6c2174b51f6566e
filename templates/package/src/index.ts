// The public API only: re-export from the files that implement it.
export {};
