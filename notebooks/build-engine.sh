#!/usr/bin/env bash
# Builds the engine and the notebook glue into ../artifacts/notebooks/ (what every notebook's first cell #r's),
# and applies the Debian 12 libstdc++ fix to TorchSharp's native library, including the copy TorchSharp makes for
# notebooks (see ../build/glibcxx-weaken.targets and notebooks/README.md).
#   ./build-engine.sh          CPU (TorchSharp-cpu)
#   ./build-engine.sh cuda     GPU (TorchSharp-cuda-linux; also change the first cell's #r line)
set -euo pipefail
cd "$(dirname "$0")/.."
backend="${1:-cpu}"
dotnet build src/DreamBooth.Notebooks/DreamBooth.Notebooks.csproj -c Release -p:TorchBackend="$backend" --nologo -v q
ls -1 artifacts/notebooks/
