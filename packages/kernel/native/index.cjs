// The folder to put on a native dataplane's include path for "fulcrum/plan-hash.h":
//   binding.gyp  "include_dirs": ["<!(node -p \"require('@fulcrum/kernel/native')\")"]
module.exports = __dirname;
