#!/usr/bin/env bash
# Installs the pinned notebook tooling and builds the engine. Argument: cpu (default) or cuda.
set -euo pipefail
backend="${1:-cpu}"
dotnet tool install -g Microsoft.dotnet-interactive --version 1.0.712001 || dotnet tool update -g Microsoft.dotnet-interactive --version 1.0.712001
dotnet tool install -g dotnet-repl --version 0.3.259 || dotnet tool update -g dotnet-repl --version 0.3.259
export PATH="$PATH:$HOME/.dotnet/tools"
if command -v jupyter >/dev/null 2>&1; then dotnet interactive jupyter install || true; fi
dotnet build DreamBoothNotebooks.sln -p:TorchBackend="$backend"
