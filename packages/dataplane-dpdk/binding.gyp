{
  "targets": [
    {
      "target_name": "fulcrum_dpdk",
      "sources": [
        "native/core/checksum.cc",
        "native/core/tcp.cc",
        "native/core/laddr.cc",
        "native/core/conn.cc",
        "native/core/neigh.cc",
        "native/core/route.cc",
        "native/core/pipeline.cc",
        "native/core/fullnat.cc",
        "native/core/insert.cc",
        "native/core/worker.cc",
        "native/core/steering.cc",
        "native/core/syncookie.cc",
        "native/core/synproxy.cc",
        "native/core/drain.cc",
        "native/core/eal.cc",
        "native/addon/addon.cc",
        "native/addon/harness.cc",
        "native/addon/eal-binding.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!(node -p \"require('@fulcrum/kernel/native')\")",
        "native"
      ],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_CPP_EXCEPTIONS", "ALLOW_EXPERIMENTAL_API"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-O2", "-fvisibility=hidden", "-Wall", "-Wno-unused-parameter", "<!@(pkg-config --cflags libdpdk)"],
      "libraries": ["<!@(pkg-config --libs libdpdk)"]
    }
  ]
}
