using DreamBooth.Imaging;
using DreamBooth.Loading;
using DreamBooth.Sampling;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace DreamBooth.Pipelines;

/// <summary>
/// An X/Y/Z plot: a base request and two or three axes (any of Seed, Sampler, Steps, CFG scale, prompt search/replace,
/// negative preset, checkpoint), like AUTOMATIC1111's scripts/xyz_grid.py. <see cref="Validate"/> checks the axes.
/// </summary>
public sealed record GridRequest
{
    /// <summary>The settings every cell starts from (its batch size is ignored: one image per cell).</summary>
    public required GenerationRequest Base { get; init; }

    /// <summary>Columns.</summary>
    public required XyzAxis X { get; init; }

    /// <summary>Rows (optional: a single row).</summary>
    public XyzAxis? Y { get; init; }

    /// <summary>Sub-grids (optional).</summary>
    public XyzAxis? Z { get; init; }

    /// <summary>Presets for a negative-preset axis (the preset text replaces the base negative prompt).</summary>
    public NegativePromptPresets? Presets { get; init; }

    /// <summary>The axes that are set, in X, Y, Z order.</summary>
    public IReadOnlyList<XyzAxis> Axes => new[] { X, Y, Z }.Where(a => a is not null).Select(a => a!).ToList();

    /// <summary>Throws <see cref="ArgumentException"/> / <see cref="FormatException"/> naming the axis and the fix.</summary>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(Base);
        ArgumentNullException.ThrowIfNull(X);
        if (Z is not null && Y is null)
            throw new ArgumentException("GridRequest.Z is set but Y is not; fill the Y axis first", nameof(Z));
        var dup = Axes.GroupBy(a => a.Kind).FirstOrDefault(g => g.Count() > 1);
        if (dup is not null)
            throw new ArgumentException($"the \"{XyzAxis.NameOf(dup.Key)}\" axis is used twice; each kind may vary along one axis only", nameof(X));
        foreach (var a in Axes)
        {
            switch (a.Kind)
            {
                case XyzAxisKind.Sampler:
                    foreach (var v in a.Values) SamplerFactory.Parse(v);
                    break;
                case XyzAxisKind.Steps:
                    foreach (var v in a.IntValues())
                        if (v is < 1 or > 1000) throw new ArgumentException($"Steps axis: {v} steps is outside 1..1000", nameof(X));
                    break;
                case XyzAxisKind.Seed:
                    foreach (var v in a.IntValues())
                        if (v < -1) throw new ArgumentException($"Seed axis: {v} is not a seed (use -1 for random or a number ≥ 0)", nameof(X));
                    break;
                case XyzAxisKind.CfgScale:
                    foreach (var v in a.FloatValues())
                        if (v is < 0 or > 100) throw new ArgumentException($"CFG Scale axis: {v} is outside 0..100", nameof(X));
                    break;
                case XyzAxisKind.PromptSearchReplace:
                    a.ValidateSearchTerm(Base.Prompt, Base.NegativePrompt);
                    break;
                case XyzAxisKind.NegativePreset:
                    if (Presets is null) throw new ArgumentException("a Negative preset axis needs GridRequest.Presets (data/negative-prompts.json)", nameof(Presets));
                    foreach (var v in a.Values) Presets.Get(v);
                    break;
            }
        }
        (Base with { BatchSize = 1, Seeds = null }).Validate();
    }
}

/// <summary>Progress of a grid: cell <see cref="Cell"/> of <see cref="TotalCells"/> (0-based, in generation order) and its step.</summary>
public sealed record GridProgress(int Cell, int TotalCells, string CellLabel, GenerationProgress? Step);

/// <summary>The composed grid and the parameters of each cell ([z][y][x]).</summary>
public sealed class GridRunResult : IDisposable
{
    internal GridRunResult(GridResult grid, GenerationParameters[,,] parameters)
    {
        Grid = grid;
        _parameters = parameters;
    }

    readonly GenerationParameters[,,] _parameters;

    /// <summary>The cell images with labels (owned; disposed with this object).</summary>
    public GridResult Grid { get; }

    /// <summary>The AUTOMATIC1111 parameters of the cell at column x, row y, sub-grid z.</summary>
    public GenerationParameters Parameters(int x, int y, int z = 0) => _parameters[z, y, x];

    /// <summary>The first cell's parameters: what A1111 writes into a grid PNG.</summary>
    public GenerationParameters First => _parameters[0, 0, 0];

    public void Dispose() => Grid.Dispose();
}

/// <summary>
/// Runs an X/Y/Z plot: one generation per cell with the cell's settings applied to the base request, filling a
/// <see cref="GridResult"/>. Inference only (nothing is saved). With a checkpoint axis, models are loaded one at a time
/// through the loader and the cells are generated checkpoint by checkpoint, so only one model is in memory.
/// A base seed of -1 is drawn once, so every cell shares it (as A1111 does); -1 values on a Seed axis each draw their own.
/// </summary>
public sealed class GridRunner
{
    readonly StableDiffusionModel? _model;
    readonly Func<string, StableDiffusionModel>? _loadCheckpoint;

    /// <summary>
    /// <paramref name="model"/> runs every cell unless there is a checkpoint axis; <paramref name="loadCheckpoint"/> loads
    /// a checkpoint axis value (the runner disposes what it loads).
    /// </summary>
    public GridRunner(StableDiffusionModel? model, Func<string, StableDiffusionModel>? loadCheckpoint = null)
    {
        _model = model;
        _loadCheckpoint = loadCheckpoint;
    }

    /// <summary>The request of one cell (seed resolved when it is not -1; batch size 1).</summary>
    public static GenerationRequest CellRequest(GridRequest grid, int x, int y, int z = 0)
    {
        var r = grid.Base with { BatchSize = 1, Seeds = null };
        string prompt = r.Prompt, negative = r.NegativePrompt;
        var axes = new (XyzAxis? Axis, int Index)[] { (grid.X, x), (grid.Y, y), (grid.Z, z) };
        // negative preset first, so a prompt S/R term can also be replaced inside the preset text
        foreach (var (axis, i) in axes.Where(a => a.Axis?.Kind == XyzAxisKind.NegativePreset))
            negative = grid.Presets!.Get(axis!.Values[i]).Text;
        foreach (var (axis, i) in axes)
        {
            if (axis is null) continue;
            var v = axis.Values[i];
            switch (axis.Kind)
            {
                case XyzAxisKind.Seed: r = r with { Seed = axis.IntValues()[i] }; break;
                case XyzAxisKind.Sampler: r = r with { Sampler = SamplerFactory.Parse(v) }; break;
                case XyzAxisKind.Steps: r = r with { Steps = (int)axis.IntValues()[i] }; break;
                case XyzAxisKind.CfgScale: r = r with { GuidanceScale = axis.FloatValues()[i] }; break;
                case XyzAxisKind.PromptSearchReplace: (prompt, negative) = axis.ApplySearchReplace(prompt, negative, i); break;
            }
        }
        return r with { Prompt = prompt, NegativePrompt = negative };
    }

    /// <summary>Generates every cell. Throws <see cref="OperationCanceledException"/> when cancelled (cells so far are dropped).</summary>
    public GridRunResult Run(GridRequest request, IProgress<GridProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        request.Validate();
        var random = Random.Shared;
        // fix the seeds once: the base seed for all cells, each -1 on a Seed axis separately
        var grid = request with { Base = request.Base with { Seed = request.Base.Seed >= 0 ? request.Base.Seed : random.NextInt64(0, uint.MaxValue) } };
        grid = grid with { X = FixSeeds(grid.X, random), Y = grid.Y is null ? null : FixSeeds(grid.Y, random), Z = grid.Z is null ? null : FixSeeds(grid.Z, random) };

        var checkpointAxis = grid.Axes.FirstOrDefault(a => a.Kind == XyzAxisKind.Checkpoint);
        if (checkpointAxis is null && _model is null)
            throw new InvalidOperationException("GridRunner: no model was given and there is no checkpoint axis");
        if (checkpointAxis is not null && _loadCheckpoint is null)
            throw new InvalidOperationException("GridRunner: a checkpoint axis needs a loader (the loadCheckpoint argument)");

        int nx = grid.X.Values.Count, ny = grid.Y?.Values.Count ?? 1, nz = grid.Z?.Values.Count ?? 1;
        var cells = new List<(int X, int Y, int Z)>();
        for (int z = 0; z < nz; z++)
            for (int y = 0; y < ny; y++)
                for (int x = 0; x < nx; x++)
                    cells.Add((x, y, z));
        int CheckpointIndex((int X, int Y, int Z) c) =>
            checkpointAxis is null ? 0 : ReferenceEquals(checkpointAxis, grid.X) ? c.X : ReferenceEquals(checkpointAxis, grid.Y) ? c.Y : c.Z;
        cells = cells.OrderBy(CheckpointIndex).ToList(); // stable: one model at a time

        var result = GridResult.FromAxes(grid.X, grid.Y, grid.Z);
        var parameters = new GenerationParameters[nz, ny, nx];
        try
        {
            int done = 0;
            foreach (var group in cells.GroupBy(CheckpointIndex))
            {
                StableDiffusionModel? loaded = null;
                try
                {
                    var model = checkpointAxis is null ? _model! : (loaded = _loadCheckpoint!(checkpointAxis.Values[group.Key]));
                    var pipe = new StableDiffusionPipeline(model);
                    foreach (var c in group)
                    {
                        cancellationToken.ThrowIfCancellationRequested();
                        var label = CellLabel(grid, c.X, c.Y, c.Z);
                        int index = done;
                        var cellProgress = progress is null ? null
                            : new Training.InlineProgress<GenerationProgress>(p => progress.Report(new GridProgress(index, cells.Count, label, p)));
                        progress?.Report(new GridProgress(index, cells.Count, label, null));
                        using var generated = pipe.Generate(CellRequest(grid, c.X, c.Y, c.Z), cellProgress, cancellationToken);
                        var images = generated.ToImages();
                        for (int i = 1; i < images.Count; i++) images[i].Dispose();
                        result[c.X, c.Y, c.Z] = images[0];
                        parameters[c.Z, c.Y, c.X] = generated.Parameters[0];
                        done++;
                    }
                }
                finally
                {
                    loaded?.Dispose();
                }
            }
            progress?.Report(new GridProgress(cells.Count, cells.Count, "", null));
            return new GridRunResult(result, parameters);
        }
        catch
        {
            result.Dispose();
            throw;
        }
    }

    static XyzAxis FixSeeds(XyzAxis axis, Random random)
    {
        if (axis.Kind != XyzAxisKind.Seed || axis.IntValues().All(s => s >= 0)) return axis;
        var fixedValues = axis.IntValues().Select(s => s >= 0 ? s : random.NextInt64(0, uint.MaxValue));
        return XyzAxis.Parse(XyzAxisKind.Seed, string.Join(",", fixedValues.Select(v => v.ToString(System.Globalization.CultureInfo.InvariantCulture))));
    }

    static string CellLabel(GridRequest g, int x, int y, int z)
    {
        var parts = new List<string> { g.X.Labels()[x] };
        if (g.Y is not null) parts.Add(g.Y.Labels()[y]);
        if (g.Z is not null) parts.Add(g.Z.Labels()[z]);
        return string.Join(", ", parts);
    }
}
