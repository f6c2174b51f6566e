export { activeOptionsProperties, type ActiveOptions } from './options.js';
export { ActiveWatch, type Probe, type ProbeResult, type ProbeTarget } from './runner.js';
export { defineActiveCheck, type ActiveCheckDefinition } from './define.js';
export { errorCode, errorMessage } from './errors.js';
