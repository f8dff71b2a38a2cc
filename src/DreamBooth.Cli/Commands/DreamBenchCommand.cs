using System.CommandLine;
using DreamBooth.TinyWorld;

namespace DreamBooth.Cli.Commands;

/// <summary>`dreambooth tinyworld dreambench`: base model vs DreamBooth without / with prior preservation on the demo subject.</summary>
public static class DreamBenchCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Base model.", DefaultValueFactory = _ => CliPaths.DefaultModel };
        var work = new Option<string>("--work") { Description = "Folder for the two training sessions.", DefaultValueFactory = _ => Path.Combine("outputs", "dreambench") };
        var steps = new Option<int?>("--steps") { Description = "DreamBooth steps (default: the quickstart's)." };
        var lr = new Option<double?>("--lr") { Description = "DreamBooth UNet learning rate (default: the quickstart's)." };
        var seeds = new Option<int>("--seeds") { Description = "Seeds per prompt.", DefaultValueFactory = _ => 3 };
        var trainSeeds = new Option<string?>("--train-seeds") { Description = "Comma-separated DreamBooth training seeds; each DreamBooth row is their mean (default: the quickstart's seed, 1234). The scores vary a lot with the seed." };
        var classFromCaptions = new Option<bool?>("--class-prompts-from-captions") { Description = "Captioned prior preservation: class images from the instance captions minus the identifier (true/false; default: the quickstart's; see train --class-prompts-from-captions)." };
        var masked = new Option<bool?>("--masked-loss") { Description = "Masked training with the demo subject's masks (default: the quickstart's, true; see train --masked-loss)." };
        var unmaskedWeight = new Option<double?>("--unmasked-weight") { Description = "Loss weight outside the masks (default 0.1)." };
        var batchSize = new Option<int?>("--batch-size") { Description = "Instance images per DreamBooth step (default 1; the recommended settings use 2)." };
        var teTraining = new Option<string?>("--text-encoder-training") { Description = "What the text-encoder steps train, as train --text-encoder-training: full or identifier (default: the quickstart's, full; the recommended settings use identifier)." };
        var teLr = new Option<double?>("--text-encoder-lr") { Description = "Text-encoder learning rate (default: the quickstart's, 1e-4; the recommended settings use 1e-3 with identifier)." };
        var teSteps = new Option<int?>("--text-encoder-steps") { Description = "Steps during which the text encoder trains too (default: the quickstart's, 100; the recommended settings use 50)." };
        var timestepBias = new Option<string?>("--timestep-bias") { Description = "Biased timestep sampling of the DreamBooth steps, as train --timestep-bias (default: the quickstart's, none; uniform timesteps)." };
        var threads = new Option<int?>("--threads") { Description = "libtorch CPU threads (default: the quickstart's, 1; images are generated on all cores either way)." };
        var cmd = new Command("dreambench", "Mini DreamBench: subject fidelity, prompt fidelity and leakage for the base model and DreamBooth without / with prior preservation.")
        {
            model, work, steps, lr, seeds, trainSeeds, classFromCaptions, masked, unmaskedWeight, timestepBias, batchSize, teTraining, teLr, teSteps, threads,
        };
        cmd.SetAction(pr =>
        {
            int n = pr.GetValue(seeds);
            if (n < 1) throw new CliException($"--seeds must be ≥ 1 (got {n})");
            var training = new QuickstartOptions { Model = CliPaths.Resolve(pr.GetValue(model)!), InstanceImages = CliPaths.Resolve(Path.Combine("data", "demo-subject")) };
            if (pr.GetValue(steps) is int s) training = training with { Steps = s };
            if (pr.GetValue(lr) is double l)
            {
                if (!(l > 0 && l < 1)) throw new CliException($"--lr must be in (0, 1), e.g. 1.5e-4 (got {l})");
                training = training with { LearningRate = l };
            }
            if (pr.GetValue(teLr) is double tl) training = training with { TextEncoderLearningRate = QuickstartCommand.CheckTextEncoderLearningRate(tl) };
            if (pr.GetValue(teSteps) is int tsteps) training = training with { TextEncoderSteps = QuickstartCommand.CheckTextEncoderSteps(tsteps) };
            if (pr.GetValue(teTraining) is { } tt) training = training with { TextEncoderTraining = TrainCommand.ParseTextEncoderTraining(tt) };
            if (pr.GetValue(batchSize) is int bs) training = training with { BatchSize = QuickstartCommand.CheckBatchSize(bs) };
            if (pr.GetValue(threads) is int th) training = training with { Threads = QuickstartCommand.CheckThreads(th) };
            training = training with
            {
                ClassPromptsFromCaptions = pr.GetValue(classFromCaptions) ?? training.ClassPromptsFromCaptions,
                MaskedLoss = pr.GetValue(masked) ?? training.MaskedLoss,
                UnmaskedWeight = pr.GetValue(unmaskedWeight) ?? training.UnmaskedWeight,
                TimestepBias = pr.GetValue(timestepBias) is { } tb ? TrainCommand.ParseTimestepBias(tb) : training.TimestepBias,
            };
            var options = new DreamBenchOptions { Seeds = Enumerable.Range(0, n).Select(i => 11L * (i + 1)).ToArray() };
            IReadOnlyList<long>? trainingSeeds = pr.GetValue(trainSeeds) is { } ts ? ParseSeeds(ts) : null;
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var results = DreamBench.Compare(training, Path.GetFullPath(pr.GetValue(work)!), options,
                progress: new Training.InlineProgress<string>(m => Cli.Err.WriteLine(m)), ct: Cli.Cancellation, trainingSeeds: trainingSeeds);
            foreach (var r in results) Cli.Out.WriteLine(r.ToString());
            using (var baseModel = Loading.ModelSource.Load(training.Model))
            {
                Cli.Out.WriteLine(DreamBench.VaeCeiling(baseModel).ToString());
                Cli.Out.WriteLine(DreamBench.LatentContrast(baseModel).ToString());
            }
            Cli.Out.WriteLine($"({clock.Elapsed.TotalMinutes:F1} min; subject fidelity = mean SubjectFidelity score of identifier prompts, prompt fidelity = background and position obeyed, leakage = class prompts that draw the subject; the VAE round trip is about the most subject fidelity this model's decoder allows; the latent contrast is how far the VAE puts the subject's colours from each background's — the smaller, the more easily the UNet loses them there)");
            return 0;
        });
        return cmd;
    }

    /// <summary>Parses "1234,1,2" (commas or spaces); anything else is refused naming the option.</summary>
    internal static long[] ParseSeeds(string text)
    {
        var parts = text.Split([',', ' '], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var seeds = new long[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!long.TryParse(parts[i], System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out seeds[i]))
                throw new CliException($"--train-seeds: '{parts[i]}' is not an integer seed; give seeds separated by commas, e.g. --train-seeds 1234,1,2");
        if (seeds.Length == 0) throw new CliException("--train-seeds: give at least one seed, e.g. --train-seeds 1234,1,2");
        return seeds;
    }
}
