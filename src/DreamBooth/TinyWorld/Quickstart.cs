using DreamBooth.Imaging;
using DreamBooth.Imaging.Import;
using DreamBooth.Loading;
using DreamBooth.Pipelines;
using DreamBooth.Sampling;
using DreamBooth.Text;
using DreamBooth.Training;
using DreamBooth.Training.Optim;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace DreamBooth.TinyWorld;

/// <summary>Settings of the quickstart: the whole fast-DreamBooth flow on the embedded tiny model.</summary>
public sealed record QuickstartOptions
{
    /// <summary>The base model (default: the embedded tiny model).</summary>
    public string Model { get; init; } = Path.Combine("data", "models", "tiny-sd");

    /// <summary>The demo subject's instance images.</summary>
    public string InstanceImages { get; init; } = Path.Combine("data", "demo-subject");

    public string OutputFolder { get; init; } = Path.Combine("outputs", "quickstart");

    public int Steps { get; init; } = 300;
    public double LearningRate { get; init; } = 2e-4;
    public int TextEncoderSteps { get; init; } = 100;
    public double TextEncoderLearningRate { get; init; } = 1e-4;

    /// <summary>What the text-encoder steps train (<see cref="TrainingOptions.TextEncoderTraining"/>): the whole encoder by default.</summary>
    public TextEncoderTraining TextEncoderTraining { get; init; } = TextEncoderTraining.Full;
    public int ClassImages { get; init; } = 40;

    /// <summary>Instance images per DreamBooth step (<see cref="TrainingOptions.BatchSize"/>; with prior preservation as many class images join them).</summary>
    public int BatchSize { get; init; } = 1;
    public bool PriorPreservation { get; init; } = true;
    public long Seed { get; init; } = 1234;

    /// <summary>
    /// Captioned prior preservation (<see cref="TrainingOptions.ClassPromptsFromCaptions"/>): each class image is made
    /// from an instance caption minus the identifier. On by default: with masked training it gave the best mini-DreamBench
    /// result (README; every measurement in docs/tiny-world-dreambench.md), and it removes leakage.
    /// </summary>
    public bool ClassPromptsFromCaptions { get; init; } = true;

    /// <summary>
    /// Masked training (<see cref="TrainingOptions.MaskedLoss"/>) with the demo subject's mask files, outside-the-mask
    /// weight <see cref="UnmaskedWeight"/>.
    /// </summary>
    public bool MaskedLoss { get; init; } = true;

    /// <summary>Loss weight outside the subject masks (<see cref="TrainingOptions.UnmaskedWeight"/>).</summary>
    public double UnmaskedWeight { get; init; } = 0.1;

    /// <summary>
    /// Timestep sampling of the DreamBooth steps (<see cref="TrainingOptions.TimestepBias"/>, diffusers'
    /// <c>--timestep_bias_*</c>); uniform by default. Measured on the mini DreamBench's prompts (docs/tiny-world-dreambench.md): <c>later:2:0.5</c>
    /// (the noisier half drawn twice as often) scored 0.76 / 0.62 / 0.57 for training seeds 1234 / 1 / 2 — no gain on average.
    /// </summary>
    public TimestepBias TimestepBias { get; init; } = new();

    /// <summary>
    /// libtorch's intra-op threads while the quickstart runs (0 keeps the current setting; restored afterwards). Default 1:
    /// the tiny model's operations are too short for libtorch's threads — measured on the 2-core VM (2026-11-28), the
    /// whole quickstart took 230 s of run with 2 libtorch threads and 139 s with 1 (training steps 0.38 → 0.21 s),
    /// before images were generated on both cores (<see cref="ImageWorkers"/>). On a bigger machine try more.
    /// </summary>
    public int Threads { get; init; } = 1;

    /// <summary>
    /// Images generated at once on the CPU — class images, the grids' cells (<see cref="CpuWorkers"/>); null: one per core
    /// that <see cref="Threads"/> leaves (<see cref="CpuWorkers.FillCores"/>). The images are the same whatever the number.
    /// </summary>
    public int? ImageWorkers { get; init; }

    /// <summary><see cref="ImageWorkers"/>, or one per core that libtorch's current thread count leaves.</summary>
    public int EffectiveImageWorkers => ImageWorkers ?? CpuWorkers.FillCores(TorchSharp.torch.get_num_threads());

    /// <summary>Samplers and seeds of the sampler × seed grid.</summary>
    public IReadOnlyList<Sampler> GridSamplers { get; init; } = [Sampler.EulerAncestral, Sampler.DpmPP2M, Sampler.Ddim, Sampler.UniPC];
    public IReadOnlyList<long> GridSeeds { get; init; } = [1, 2, 3, 4];
    public int SampleSteps { get; init; } = 20;
    public double GuidanceScale { get; init; } = 5.0;

    /// <summary>A reduced run (few steps and images) for tests and CI smoke checks.</summary>
    public static QuickstartOptions Smoke(string model, string images, string output) => new()
    {
        Model = model, InstanceImages = images, OutputFolder = output, Steps = 4, TextEncoderSteps = 2, ClassImages = 2,
        GridSamplers = [Sampler.EulerAncestral, Sampler.Ddim], GridSeeds = [1, 2], SampleSteps = 3,
    };
}

/// <summary>What the quickstart wrote.</summary>
public sealed record QuickstartResult(string Session, string SamplerSeedGrid, string RecontextualisationGrid, string LossChart,
    ImportReport Import, IdentifierReport Identifier, TrainingResult Training, TimeSpan Elapsed);

/// <summary>
/// The one-command demo: a session for the demo subject on the tiny model, instance images imported (and checked),
/// DreamBooth with prior preservation, then a sampler × seed grid, a recontextualisation grid (the subject on
/// backgrounds and positions its instance images never show) and the loss chart.
/// </summary>
public static class Quickstart
{
    public static QuickstartResult Run(QuickstartOptions o, IProgress<string>? log = null, IProgress<TrainingProgress>? training = null, CancellationToken ct = default)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var output = Path.GetFullPath(o.OutputFolder);
        Directory.CreateDirectory(output);
        var sessionFolder = Path.Combine(output, "session");
        if (File.Exists(Path.Combine(sessionFolder, DreamBoothSession.FileName)))
            Directory.Delete(sessionFolder, recursive: true); // the quickstart's own session of a previous run
        using var threads = CpuWorkers.UseThreads(o.Threads);
        int workers = o.EffectiveImageWorkers;
        log?.Report($"loading {o.Model}");
        using var model = ModelSource.Load(o.Model);
        var (session, report, idCheck, result) = Train(o, model, sessionFolder, log, training, ct);

        var pipe = new StableDiffusionPipeline(model) { ImageWorkers = workers };
        var samplerGrid = Path.Combine(output, "sampler-x-seed.png");
        using (var grid = new GridResult("Sampler", o.GridSamplers.Select(SamplerFactory.DisplayName).ToList(), "Seed", o.GridSeeds.Select(s => $"Seed: {s}").ToList()))
        {
            var prompt = $"{DemoSubject.InstancePrompt} on a red background";
            GenerationParameters? first = null;
            for (int x = 0; x < o.GridSamplers.Count; x++)
            {
                using var r = pipe.Generate(new GenerationRequest { Prompt = prompt, Seeds = o.GridSeeds, Steps = o.SampleSteps, Sampler = o.GridSamplers[x], GuidanceScale = o.GuidanceScale }, cancellationToken: ct);
                first ??= r.Parameters[0];
                var imgs = r.ToImages();
                for (int y = 0; y < imgs.Count; y++) grid[x, y] = ForDisplay(imgs[y]);
            }
            grid.SavePng(samplerGrid, first);
        }
        log?.Report($"wrote {samplerGrid}");

        var recontext = Path.Combine(output, "recontextualisation.png");
        var prompts = DemoSubject.RecontextualisationPrompts;
        int cols = 4, rows = (prompts.Count + cols - 1) / cols;
        var cells = new Image<Rgb24>?[rows][];
        for (int r0 = 0; r0 < rows; r0++) cells[r0] = new Image<Rgb24>?[cols];
        CpuWorkers.For(prompts.Count, workers, i =>
        {
            using var r = pipe.Generate(new GenerationRequest { Prompt = prompts[i], Seed = o.Seed, Steps = o.SampleSteps, Sampler = Sampler.DpmPP2M, GuidanceScale = o.GuidanceScale }, cancellationToken: ct);
            cells[i / cols][i % cols] = ForDisplay(r.ToImages()[0]);
        }, ct);
        // prompts run background-major: columns are positions, rows are backgrounds
        var labels = prompts.Select(p => p.Replace(DemoSubject.InstancePrompt + " ", "", StringComparison.Ordinal)).ToList();
        var columnLabels = Enumerable.Range(0, cols).Select(c => labels[c].Split(" on ")[0]).ToList();
        var rowLabels = Enumerable.Range(0, rows).Select(r0 => labels[r0 * cols].Split(" on ").Last()).ToList();
        using (var img = GridCompositor.Compose(cells, columnLabels, rowLabels, $"\"{DemoSubject.InstancePrompt} …\" after DreamBooth"))
            PngInfo.Save(img, recontext, null);
        foreach (var row in cells) foreach (var c in row) c?.Dispose();
        log?.Report($"wrote {recontext}");

        var chart = Path.Combine(output, "loss.png");
        var loss = result.History.Select(h => ((double)h.Step, h.Loss)).ToList();
        var series = new List<PlotSeries>
        {
            new("loss", loss, new Rgb24(170, 190, 230)),
            new("loss (smoothed)", LineChartImage.Smooth(loss), new Rgb24(20, 60, 160)),
        };
        if (result.History.Any(h => h.PriorLoss is not null))
            series.Add(new("prior loss (smoothed)", LineChartImage.Smooth(result.History.Where(h => h.PriorLoss is not null).Select(h => ((double)h.Step, h.PriorLoss!.Value)).ToList()), new Rgb24(200, 90, 30)));
        using (var img = LineChartImage.Render("DreamBooth training loss", "step", "loss", series)) PngInfo.Save(img, chart, null);
        log?.Report($"wrote {chart}");
        return new QuickstartResult(session.Folder, samplerGrid, recontext, chart, report, idCheck, result, clock.Elapsed);
    }

    /// <summary>Small images are enlarged (nearest neighbour, whole factors) so grid labels stay readable.</summary>
    static Image<Rgb24> ForDisplay(Image<Rgb24> image)
    {
        int factor = Math.Max(1, 128 / Math.Max(image.Width, image.Height));
        if (factor > 1) image.Mutate(c => c.Resize(image.Width * factor, image.Height * factor, KnownResamplers.NearestNeighbor));
        return image;
    }

    /// <summary>
    /// Creates the demo-subject session in <paramref name="sessionFolder"/>, imports the instance images and trains
    /// <paramref name="model"/> in place (the steps the quickstart and the mini DreamBench share).
    /// </summary>
    public static (DreamBoothSession Session, ImportReport Import, IdentifierReport Identifier, TrainingResult Training) Train(
        QuickstartOptions o, StableDiffusionModel model, string sessionFolder, IProgress<string>? log = null,
        IProgress<TrainingProgress>? training = null, CancellationToken ct = default)
    {
        int resolution = model.DefaultResolution;
        var concept = new Concept { Name = DemoSubject.Identifier, Identifier = DemoSubject.Identifier, ClassNoun = DemoSubject.ClassNoun, InstancePrompt = DemoSubject.InstancePrompt, ClassPrompt = DemoSubject.ClassPrompt };
        var session = DreamBoothSession.Create(sessionFolder, Path.GetFullPath(o.Model), [concept], new TrainingOptions
        {
            Resolution = resolution,
            UnetSteps = o.Steps,
            BatchSize = o.BatchSize,
            UnetLearningRate = o.LearningRate,
            TextEncoderSteps = o.TextEncoderSteps,
            TextEncoderLearningRate = o.TextEncoderLearningRate,
            TextEncoderTraining = o.TextEncoderTraining,
            PriorPreservation = o.PriorPreservation,
            NumClassImages = o.ClassImages,
            ClassPromptsFromCaptions = o.ClassPromptsFromCaptions,
            MaskedLoss = o.MaskedLoss,
            UnmaskedWeight = o.UnmaskedWeight,
            TimestepBias = o.TimestepBias,
            ClassImageSteps = o.SampleSteps,
            CheckpointEvery = 0,
            KeepCheckpoints = 1,
            Seed = o.Seed,
        });
        log?.Report($"session {session.Folder}");
        var images = Directory.GetFiles(o.InstanceImages, "*.png").Where(f => !MaskFiles.IsMask(f)).OrderBy(f => f, StringComparer.Ordinal).ToList();
        if (images.Count == 0) throw new ModelLoadException(o.InstanceImages, "no demo-subject PNG images here");
        // captions: each image's sidecar .txt where every image has one, else the instance prompt for all
        var sidecars = images.Select(f => Path.ChangeExtension(f, ".txt")).ToList();
        bool captioned = sidecars.All(File.Exists);
        var importer = new InstanceImageImporter(new ImportOptions
        {
            Resolution = Math.Max(64, resolution),
            CaptionMode = captioned ? CaptionMode.SidecarOrFileName : CaptionMode.InstancePrompt,
            InstancePrompt = DemoSubject.InstancePrompt,
        });
        var report = importer.Import(captioned ? [.. images, .. sidecars] : images, session.InstanceFolder(concept), cancellationToken: ct);
        log?.Report($"imported {report.Summary.Imported} instance images ({report.Summary.Skipped} skipped)");
        var idCheck = IdentifierCheck.Check(model.Tokenizer, DemoSubject.Identifier);
        log?.Report($"identifier '{DemoSubject.Identifier}': {idCheck.Verdict}");
        var result = new DreamBoothTrainer(session, model) { ImageWorkers = o.EffectiveImageWorkers }.Train(training, ct);
        if (result.StoppedReason is not null) throw new InvalidOperationException(result.StoppedReason);
        return (session, report, idCheck, result);
    }
}
