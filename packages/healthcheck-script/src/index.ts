export { script as default, script, scriptProbe, exitVerdict, type ScriptOptions } from './script.js';
