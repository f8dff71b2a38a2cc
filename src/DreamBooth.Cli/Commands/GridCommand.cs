using System.CommandLine;
using DreamBooth.Imaging;
using DreamBooth.Loading;
using DreamBooth.Pipelines;
using DreamBooth.Training;

namespace DreamBooth.Cli.Commands;

/// <summary><c>dreambooth grid</c>: an X/Y/Z plot over two or three settings, saved as one annotated PNG.</summary>
public static class GridCommand
{
    /// <summary>Names accepted by <c>--x-type</c> / <c>--y-type</c> / <c>--z-type</c>.</summary>
    public static readonly IReadOnlyDictionary<string, XyzAxisKind> AxisNames = new Dictionary<string, XyzAxisKind>(StringComparer.OrdinalIgnoreCase)
    {
        ["seed"] = XyzAxisKind.Seed,
        ["sampler"] = XyzAxisKind.Sampler,
        ["steps"] = XyzAxisKind.Steps,
        ["cfg-scale"] = XyzAxisKind.CfgScale,
        ["cfg"] = XyzAxisKind.CfgScale,
        ["prompt-sr"] = XyzAxisKind.PromptSearchReplace,
        ["negative-preset"] = XyzAxisKind.NegativePreset,
        ["checkpoint"] = XyzAxisKind.Checkpoint,
    };

    /// <summary>Parses an axis type name; unknown names get the list of valid ones.</summary>
    public static XyzAxisKind ParseAxisKind(string option, string name) =>
        AxisNames.TryGetValue(name.Trim(), out var k) ? k
            : throw new CliException($"{option} '{name}' is not an axis type; use one of: seed, sampler, steps, cfg-scale, prompt-sr, negative-preset, checkpoint");

    public static Command Create()
    {
        var o = new GenerationOptions();
        var types = new[] { "x", "y", "z" }.Select(a => new Option<string?>($"--{a}-type") { Description = $"{a.ToUpperInvariant()} axis: seed, sampler, steps, cfg-scale, prompt-sr, negative-preset or checkpoint." }).ToArray();
        var values = new[] { "x", "y", "z" }.Select(a => new Option<string?>($"--{a}-values") { Description = $"{a.ToUpperInvariant()} axis values, comma-separated (\"Euler a,DDIM\", \"1-4\", \"5-9 (+2)\", \"10-40 [4]\")." }).ToArray();
        var cmd = new Command("grid", "X/Y/Z plot: one image per combination of two or three settings, saved as one labelled grid PNG (infotext of the first cell).");
        o.AddTo(cmd, includeInit: false);
        foreach (var opt in types.Concat(values)) cmd.Options.Add(opt);
        cmd.SetAction(pr =>
        {
            var baseRequest = o.BuildRequest(pr);
            NegativePromptPresets? presets = null;
            var axes = new List<XyzAxis>();
            for (int i = 0; i < 3; i++)
            {
                var t = pr.GetValue(types[i]);
                var v = pr.GetValue(values[i]);
                var name = "xyz"[i];
                if (t is null && v is null) continue;
                if (t is null || v is null)
                    throw new CliException($"--{name}-type and --{name}-values go together; give both (e.g. --{name}-type seed --{name}-values \"1-4\")");
                if (axes.Count < i)
                    throw new CliException($"--{name}-type is set but --{"xyz"[i - 1]}-type is not; fill the axes in order x, y, z");
                var kind = ParseAxisKind($"--{name}-type", t);
                IReadOnlyCollection<string>? choices = null;
                if (kind == XyzAxisKind.NegativePreset) choices = (presets ??= GenerationOptions.LoadPresets()).Names.ToList();
                axes.Add(XyzAxis.Parse(kind, v, choices));
            }
            if (axes.Count < 2)
                throw new CliException("a grid needs at least two axes: --x-type/--x-values and --y-type/--y-values (and optionally --z-type/--z-values)");
            var request = new GridRequest
            {
                Base = baseRequest,
                X = axes[0],
                Y = axes[1],
                Z = axes.Count > 2 ? axes[2] : null,
                Presets = presets ?? (axes.Any(a => a.Kind == XyzAxisKind.NegativePreset) ? GenerationOptions.LoadPresets() : null),
            };
            request.Validate();
            var checkpoint = axes.FirstOrDefault(a => a.Kind == XyzAxisKind.Checkpoint);
            if (checkpoint is not null)
                foreach (var c in checkpoint.Values) ModelSource.Classify(CliPaths.Resolve(c)); // fail before any work

            var loras = new List<Models.Common.LoraNetwork>();
            LoadedModel? main = null;
            try
            {
                StableDiffusionModel LoadCheckpoint(string value)
                {
                    var loaded = o.LoadModel(pr, CliPaths.Resolve(value));
                    loras.AddRange(loaded.Loras);
                    return loaded.Model;
                }
                if (checkpoint is null) main = o.LoadModel(pr);
                var runner = new GridRunner(main?.Model, LoadCheckpoint);
                var bar = ConsoleProgressBar.ForStderr("grid");
                var progress = new InlineProgress<GridProgress>(p =>
                    bar.Update(p.Cell, p.TotalCells, p.Step is { } s ? $"{p.CellLabel} step {s.Step}/{s.TotalSteps}" : p.CellLabel));
                using var result = runner.Run(request, progress, Cli.Cancellation);
                bar.Finish();
                var path = OutputFiles.Reserve(pr.GetValue(o.Out)!, result.First.Seed, "-grid");
                result.Grid.SavePng(path, result.First);
                Cli.Out.WriteLine(Path.GetFullPath(path));
            }
            finally
            {
                foreach (var l in loras) l.Dispose();
                main?.Dispose();
            }
            return 0;
        });
        return cmd;
    }
}
