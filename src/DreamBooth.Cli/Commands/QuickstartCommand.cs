using System.CommandLine;
using DreamBooth.TinyWorld;
using DreamBooth.Training;

namespace DreamBooth.Cli.Commands;

/// <summary>`dreambooth quickstart`: the whole DreamBooth flow on the embedded tiny model, in a few minutes on a CPU.</summary>
public static class QuickstartCommand
{
    public static Command Create()
    {
        var output = new Option<string>("--out") { Description = "Output folder.", DefaultValueFactory = _ => Path.Combine("outputs", "quickstart") };
        var model = new Option<string>("--model") { Description = "Base model.", DefaultValueFactory = _ => CliPaths.DefaultModel };
        var steps = new Option<int?>("--steps") { Description = "DreamBooth steps (default 300)." };
        var lr = new Option<double?>("--lr") { Description = "UNet learning rate (default: QuickstartOptions.LearningRate)." };
        var teLr = new Option<double?>("--text-encoder-lr") { Description = "Text-encoder learning rate (default: QuickstartOptions.TextEncoderLearningRate)." };
        var teSteps = new Option<int?>("--text-encoder-steps") { Description = "Steps during which the text encoder trains too." };
        var teTraining = new Option<string?>("--text-encoder-training") { Description = "What the text-encoder steps train, as train --text-encoder-training: full or identifier (default: QuickstartOptions.TextEncoderTraining)." };
        var prior = new Option<bool>("--no-prior-preservation") { Description = "Train without class images (to see leakage)." };
        var masked = new Option<bool?>("--masked-loss") { Description = "Masked training with the demo subject's masks (true/false; default true)." };
        var classFromCaptions = new Option<bool?>("--class-prompts-from-captions") { Description = "Class images from the instance captions minus the identifier (true/false; default: QuickstartOptions)." };
        var batchSize = new Option<int?>("--batch-size") { Description = "Instance images per DreamBooth step (default 1; the recommended settings use 2)." };
        var timestepBias = new Option<string?>("--timestep-bias") { Description = "Biased timestep sampling of the DreamBooth steps, as train --timestep-bias (default none; uniform timesteps)." };
        var threads = new Option<int?>("--threads") { Description = "libtorch CPU threads (default 1: faster for the tiny model; images are generated on all cores either way)." };
        var smoke = new Option<bool>("--smoke") { Description = "A reduced run (a few steps) that only checks that everything works." };
        var cmd = new Command("quickstart", "DreamBooth on the embedded tiny model: session, demo subject, prior preservation, training, grids and loss chart.")
        {
            output, model, steps, lr, teLr, teSteps, teTraining, prior, masked, classFromCaptions, timestepBias, batchSize, threads, smoke,
        };
        cmd.SetAction(pr =>
        {
            var modelPath = CliPaths.Resolve(pr.GetValue(model)!);
            var images = CliPaths.Resolve(Path.Combine("data", "demo-subject"));
            var outDir = pr.GetValue(output)!;
            var o = pr.GetValue(smoke) ? QuickstartOptions.Smoke(modelPath, images, outDir) : new QuickstartOptions { Model = modelPath, InstanceImages = images, OutputFolder = outDir };
            if (pr.GetValue(steps) is int n)
            {
                if (n < 1) throw new CliException($"--steps must be ≥ 1 (got {n})");
                o = o with { Steps = n };
            }
            if (pr.GetValue(lr) is double l)
            {
                if (!(l > 0 && l < 1)) throw new CliException($"--lr must lie in (0, 1) (got {l}); the quickstart default is {new QuickstartOptions().LearningRate}");
                o = o with { LearningRate = l };
            }
            if (pr.GetValue(teLr) is double tl) o = o with { TextEncoderLearningRate = CheckTextEncoderLearningRate(tl) };
            if (pr.GetValue(teTraining) is { } tt) o = o with { TextEncoderTraining = TrainCommand.ParseTextEncoderTraining(tt) };
            if (pr.GetValue(teSteps) is int ts) o = o with { TextEncoderSteps = CheckTextEncoderSteps(ts) };
            if (pr.GetValue(prior)) o = o with { PriorPreservation = false };
            if (pr.GetValue(masked) is bool m) o = o with { MaskedLoss = m };
            if (pr.GetValue(classFromCaptions) is bool c) o = o with { ClassPromptsFromCaptions = c };
            if (pr.GetValue(batchSize) is int bs) o = o with { BatchSize = QuickstartCommand.CheckBatchSize(bs) };
            if (pr.GetValue(threads) is int th) o = o with { Threads = CheckThreads(th) };
            if (pr.GetValue(timestepBias) is { } tb) o = o with { TimestepBias = TrainCommand.ParseTimestepBias(tb) };
            var bar = ConsoleProgressBar.ForStderr("dreambooth");
            var result = Quickstart.Run(o,
                new InlineProgress<string>(m => Cli.Err.WriteLine(m)),
                new InlineProgress<TrainingProgress>(p =>
                {
                    if (p.Phase == "training" && p.Last is { } l) bar.Update(p.Step, p.TotalSteps, $"loss {l.Loss:F4}");
                    else if (p.Message is not null && p.Phase != "training") Cli.Err.WriteLine($"[{p.Phase}] {p.Message}");
                }),
                Cli.Cancellation);
            bar.Finish();
            Cli.Out.WriteLine($"identifier check: {result.Identifier.Explanation}");
            Cli.Out.WriteLine($"instance images: {result.Import.Summary.Imported} imported; {result.Training.Step} DreamBooth steps, final loss {result.Training.History.LastOrDefault()?.Loss:F4}");
            Cli.Out.WriteLine($"session:                   {result.Session}");
            Cli.Out.WriteLine($"sampler × seed grid:       {result.SamplerSeedGrid}");
            Cli.Out.WriteLine($"recontextualisation grid:  {result.RecontextualisationGrid}");
            Cli.Out.WriteLine($"loss chart:                {result.LossChart}");
            Cli.Out.WriteLine($"done in {result.Elapsed.TotalSeconds:F0} s");
            return 0;
        });
        return cmd;
    }

    /// <summary>--batch-size of the quickstart and the mini DreamBench: at least 1.</summary>
    internal static int CheckBatchSize(int batchSize) =>
        batchSize >= 1 ? batchSize : throw new CliException($"--batch-size must be ≥ 1 (got {batchSize}); 1 or 2 fit the tiny model easily");

    /// <summary>--threads of the quickstart and the mini DreamBench: at least 1.</summary>
    internal static int CheckThreads(int threads) =>
        threads >= 1 ? threads : throw new CliException($"--threads must be ≥ 1 (got {threads}); the default, {new QuickstartOptions().Threads}, is the fast one for the tiny model");

    /// <summary>--text-encoder-steps of the quickstart and the mini DreamBench: at least 0.</summary>
    internal static int CheckTextEncoderSteps(int steps) =>
        steps >= 0 ? steps : throw new CliException($"--text-encoder-steps must be ≥ 0 (got {steps})");

    /// <summary>--text-encoder-lr of the quickstart and the mini DreamBench: in (0, 1).</summary>
    internal static double CheckTextEncoderLearningRate(double lr) =>
        lr > 0 && lr < 1 ? lr : throw new CliException($"--text-encoder-lr must lie in (0, 1), e.g. 1e-3 (got {lr})");
}
