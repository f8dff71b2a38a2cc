using System.CommandLine;
using System.Globalization;
using DreamBooth.Imaging;
using DreamBooth.Loading;
using DreamBooth.Sampling;
using DreamBooth.TinyWorld.Pretraining;
using DreamBooth.TinyWorld;
using DreamBooth.Training;
using SixLabors.ImageSharp;

namespace DreamBooth.Cli.Commands;

/// <summary><c>dreambooth tinyworld pretrain|eval</c>: the recipe that trains the embedded tiny model, and its evaluation.</summary>
public static class TinyWorldCommand
{
    public static Command Create()
    {
        var cmd = new Command("tinyworld", "Train and evaluate the tiny-world base model (data/models/tiny-sd).");
        cmd.Subcommands.Add(Pretrain());
        cmd.Subcommands.Add(Eval());
        cmd.Subcommands.Add(DreamBenchCommand.Create());
        return cmd;
    }

    static Command Pretrain()
    {
        var output = new Option<string>("--out") { Description = "Folder to write the diffusers model to (replaced atomically).", Required = true };
        var seed = new Option<int?>("--seed") { Description = "Seed of data, initialisation and training (default 1234)." };
        var vaeSteps = new Option<int?>("--vae-steps") { Description = "VAE optimiser steps." };
        var vaeFrom = new Option<string?>("--vae-from") { Description = "Reuse the VAE of this model folder instead of training one." };
        var unetSteps = new Option<int?>("--unet-steps") { Description = "Joint text-encoder + UNet optimiser steps." };
        var samples = new Option<int?>("--samples") { Description = "Rendered training samples." };
        var threads = new Option<int?>("--threads") { Description = "TorchSharp intra-op threads (default 2)." };
        var unetChannels = new Option<string?>("--unet-channels") { Description = "UNet widths per level, comma-separated (default 64,128,128)." };
        var resume = new Option<bool>("--resume") { Description = "Continue an interrupted run's UNet stage from <out>.pretrain-state.safetensors (written with every snapshot and on Ctrl+C); the other options must be the same (--snapshot-every may change; so may --threads, at the cost of bit-identity with an uninterrupted run)." };
        var unetGroups = new Option<int?>("--unet-norm-groups") { Description = "GroupNorm groups of the UNet (default 32; must divide every --unet-channels width, e.g. 16 for 64,144,144)." };
        var unetBatch = new Option<int?>("--unet-batch") { Description = "Latents per UNet step." };
        var snapshot = new Option<int?>("--snapshot-every") { Description = "Write the model folder every N UNet steps (0 = only at the end)." };
        var highNoise = new Option<double?>("--high-noise-cap") { Description = "Up-weight noisy timesteps' ε-loss by min(1 + 1/SNR, cap) (0 = off)." };
        var noiseOffset = new Option<double?>("--noise-offset") { Description = "Offset noise added to ε during training." };
        var unetLr = new Option<double?>("--unet-lr") { Description = "UNet peak learning rate." };
        var textLr = new Option<double?>("--text-lr") { Description = "Text-encoder peak learning rate." };
        var textSteps = new Option<int?>("--text-pretrain-steps") { Description = "Text-only steps that pretrain the text encoder on caption attributes before the UNet stage (0 = none)." };
        var vaeContinue = new Option<int?>("--vae-continue-steps") { Description = "With --vae-from: train the loaded VAE this many more steps before using it." };
        var vaeContinueLr = new Option<double?>("--vae-continue-lr") { Description = "Peak learning rate of --vae-continue-steps (default 5e-4)." };
        var vaePatterns = new Option<double?>("--vae-pattern-fraction") { Description = "Fraction of each VAE batch drawn from uncaptioned multi-coloured objects (default 0.5)." };
        var unetPatterns = new Option<double?>("--unet-pattern-fraction") { Description = "Captioned multi-coloured objects added to the UNet's data, as a fraction of --samples (default 0)." };
        var unetPatternColours = new Option<bool?>("--unet-pattern-colours") { Description = "With --unet-pattern-fraction: caption those objects with their colour words (\"a yellow and red diamond …\") instead of colourlessly." };
        var vaeAnchor = new Option<double?>("--vae-anchor-weight") { Description = "With --vae-continue-steps: keep the scenes' latents where the loaded VAE put them (weight of the drift penalty; needed with --init-from)." };
        var vaeSeparation = new Option<double?>("--vae-colour-separation") { Description = "Weight of the colour-separation term: plain palette colours' latents must lie at least --vae-colour-margin × ΔE/100 apart (default 0 = off; moves the latents, so the UNet must be pretrained again)." };
        var vaeMargin = new Option<double?>("--vae-colour-margin") { Description = "Latent distance per 100 ΔE that --vae-colour-separation asks for (default 2.5)." };
        var vaePaste = new Option<double?>("--vae-paste-weight") { Description = "Weight of the latent-paste term: a patterned object's latents pasted into another background's must decode to the object there (default 0 = off)." };
        var vaeFreezeEncoder = new Option<bool?>("--vae-freeze-encoder") { Description = "With --vae-continue-steps: train only the decoder; the loaded encoder's latents stay exactly as they are." };
        var vaeLayers = new Option<int?>("--vae-layers-per-block") { Description = "ResNet blocks per VAE level (default 1); with --vae-from, a VAE with fewer is grown by identity-initialised blocks." };
        var prediction = new Option<string?>("--prediction") { Description = "What the UNet predicts: epsilon or v_prediction." };
        var zeroSnr = new Option<bool?>("--zero-terminal-snr") { Description = "Train on SD's schedule rescaled to zero terminal SNR (needs --prediction v_prediction)." };
        var objectWeight = new Option<double?>("--unet-object-weight") { Description = "Extra weight of latent positions covered by an object in the diffusion loss (0 = off)." };
        var initFrom = new Option<string?>("--init-from") { Description = "Start the UNet and text encoder from this model folder: with --vae-from <same folder> to continue it, or --vae-from <another model> --unet-steps N to warm-start a UNet for that VAE (scaling_factor = 1/std of its latents); usually with --text-pretrain-steps 0." };
        var quick = new Option<bool>("--quick") { Description = "A smoke recipe: the full-size model with 256 scenes and 60 VAE / 100 text / 100 UNet steps (about 8 min on 2 cores; the model it makes is not good)." };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "Folder with CLIP's vocab.json + merges.txt (default: data/models/tiny-sd/tokenizer of this repository)." };
        var cmd = new Command("pretrain", "Train the tiny VAE, text encoder and UNet on TinyWorld and write a diffusers folder.")
        {
            output, seed, vaeSteps, vaeFrom, unetSteps, samples, threads, unetChannels, unetGroups, unetBatch, snapshot, highNoise, noiseOffset, unetLr, textLr, textSteps, vaeContinue, vaeContinueLr, vaePatterns, unetPatterns, unetPatternColours, vaeAnchor, vaePaste, vaeSeparation, vaeMargin, vaeFreezeEncoder, vaeLayers, prediction, zeroSnr, objectWeight, initFrom, quick, resume, tokenizer,
        };
        cmd.SetAction((pr, _) =>
        {
            var o = pr.GetValue(quick) ? PretrainOptions.Quick : new PretrainOptions();
            var tok = pr.GetValue(tokenizer) ?? FindDefaultTokenizer();
            o = o with
            {
                TokenizerFolder = tok,
                Seed = pr.GetValue(seed) ?? o.Seed,
                VaeSteps = pr.GetValue(vaeSteps) ?? o.VaeSteps,
                VaeFrom = pr.GetValue(vaeFrom) is { } vf ? Path.GetFullPath(vf) : null,
                UnetSteps = pr.GetValue(unetSteps) ?? o.UnetSteps,
                TrainSamples = pr.GetValue(samples) ?? o.TrainSamples,
                Threads = pr.GetValue(threads) ?? o.Threads,
                UnetBatchSize = pr.GetValue(unetBatch) ?? o.UnetBatchSize,
                SnapshotEvery = pr.GetValue(snapshot) ?? o.SnapshotEvery,
                UnetChannels = pr.GetValue(unetChannels) is { } uc ? ParseInts(uc, "--unet-channels") : o.UnetChannels,
                UnetNormGroups = pr.GetValue(unetGroups) ?? o.UnetNormGroups,
                HighNoiseWeightCap = pr.GetValue(highNoise) ?? o.HighNoiseWeightCap,
                NoiseOffset = pr.GetValue(noiseOffset) ?? o.NoiseOffset,
                UnetLearningRate = pr.GetValue(unetLr) ?? o.UnetLearningRate,
                TextLearningRate = pr.GetValue(textLr) ?? o.TextLearningRate,
                TextPretrainSteps = pr.GetValue(textSteps) ?? o.TextPretrainSteps,
                VaeContinueSteps = pr.GetValue(vaeContinue) ?? o.VaeContinueSteps,
                VaeContinueLearningRate = pr.GetValue(vaeContinueLr) ?? o.VaeContinueLearningRate,
                VaePatternFraction = pr.GetValue(vaePatterns) ?? o.VaePatternFraction,
                UnetPatternFraction = pr.GetValue(unetPatterns) ?? o.UnetPatternFraction,
                UnetPatternColourWords = pr.GetValue(unetPatternColours) ?? o.UnetPatternColourWords,
                VaeAnchorWeight = pr.GetValue(vaeAnchor) ?? o.VaeAnchorWeight,
                VaePasteWeight = pr.GetValue(vaePaste) ?? o.VaePasteWeight,
                VaeColourSeparation = pr.GetValue(vaeSeparation) ?? o.VaeColourSeparation,
                VaeColourMargin = pr.GetValue(vaeMargin) ?? o.VaeColourMargin,
                VaeFreezeEncoder = pr.GetValue(vaeFreezeEncoder) ?? o.VaeFreezeEncoder,
                VaeLayersPerBlock = pr.GetValue(vaeLayers) ?? o.VaeLayersPerBlock,
                Prediction = pr.GetValue(prediction) is { } pt ? Cli.ParsePredictionType(pt, "--prediction") : o.Prediction,
                ZeroTerminalSnr = pr.GetValue(zeroSnr) ?? o.ZeroTerminalSnr,
                UnetObjectWeight = pr.GetValue(objectWeight) ?? o.UnetObjectWeight,
                InitFrom = pr.GetValue(initFrom) is { } inf ? Path.GetFullPath(inf) : null,
            };
            var progress = new ConsoleProgress();
            var statePath = PretrainState.PathFor(pr.GetValue(output)!);
            if (pr.GetValue(resume))
                Cli.Err.WriteLine(File.Exists(statePath) ? $"resuming the UNet stage from {statePath}" : $"--resume: there is no {statePath} (nothing was interrupted there); starting from the beginning");
            PretrainResult result;
            // Cli.Cancellation is what Ctrl+C cancels (the action's own token is not wired to it)
            try { result = TinyWorldPretraining.Run(o, pr.GetValue(output)!, progress, Cli.Cancellation, pr.GetValue(resume)); }
            catch (OperationCanceledException) when (File.Exists(statePath))
            {
                progress.Done();
                Cli.Err.WriteLine($"stopped; the UNet stage's state is in {statePath}: run the same command with --resume to continue");
                throw;
            }
            progress.Done();
            Cli.Out.WriteLine($"wrote {result.Folder}");
            Cli.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"final VAE loss {result.FinalVaeLoss:F4}, final UNet loss {(result.UnetStepsDone == 0 ? "- (UNet kept as loaded)" : result.FinalUnetLoss.ToString("F4", CultureInfo.InvariantCulture))}, scaling factor {result.ScalingFactor:F4}, {result.TotalSeconds:F0} s"));
            Cli.Out.WriteLine("parameters: " + string.Join(", ", result.Parameters.Select(kv => $"{kv.Key} {kv.Value:N0}")));
            return Task.FromResult(0);
        });
        return cmd;
    }

    static Command Eval()
    {
        var model = new Option<string>("--model") { Description = "A diffusers model folder (e.g. data/models/tiny-sd).", Required = true };
        var samples = new Option<int>("--samples") { Description = "Held-out captions to generate (one image each).", DefaultValueFactory = _ => 100 };
        var seed = new Option<int>("--seed") { Description = "Seed of captions and images.", DefaultValueFactory = _ => 777 };
        var steps = new Option<int>("--steps") { Description = "Denoising steps.", DefaultValueFactory = _ => 20 };
        var cfg = new Option<double>("--cfg-scale") { Description = "Classifier-free guidance scale.", DefaultValueFactory = _ => 5.0 };
        var grid = new Option<string?>("--grid") { Description = "Write a grid PNG of the first 40 images here." };
        var classPrompt = new Option<string>("--class-prompt") { Description = "Also generate 8 images of this prompt and report how often the shape is right.", DefaultValueFactory = _ => "a diamond" };
        var split = new Option<TinyWorldSplit>("--split") { Description = "Caption split: HeldOut (combinations never trained on) or Train.", DefaultValueFactory = _ => TinyWorldSplit.HeldOut };
        var record = new Option<bool>("--record") { Description = "Write the numbers into the evaluation section of the model folder's README.md." };
        var sampler = new Option<string?>("--sampler") { Description = "Sampler (default dpmpp-2m)." };
        var vaeSamples = new Option<int>("--vae-samples") { Description = "Rendered held-out scenes for the VAE round trip.", DefaultValueFactory = _ => 16 };
        var cmd = new Command("eval", "Generate images for held-out TinyWorld captions and print background / shape / colour / position accuracy.")
        {
            model, samples, seed, steps, cfg, grid, classPrompt, split, record, sampler, vaeSamples,
        };
        cmd.SetAction((pr, _) =>
        {
            torch_threads();
            using var m = StableDiffusionModel.FromPretrained(pr.GetValue(model)!);
            var options = new TinyModelEvalOptions { Samples = pr.GetValue(samples), Seed = pr.GetValue(seed), Steps = pr.GetValue(steps), GuidanceScale = pr.GetValue(cfg), Split = pr.GetValue(split) };
            if (pr.GetValue(sampler) is { } sn) options = options with { Sampler = SamplerFactory.Parse(sn) };
            string vaeLine;
            int nv = pr.GetValue(vaeSamples);
            using (var rt = TinyModelEvaluation.VaeRoundTrip(m, nv, options.Seed))
            {
                Cli.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"VAE round trip of {nv} held-out renders: PSNR {rt.Psnr:F1} dB, background+shape+colour kept in {rt.AttributesKept}/{nv}; shape kept: small {rt.SmallShapesKept}/{rt.SmallScenes}, large {rt.LargeShapesKept}/{rt.LargeScenes}"));
                vaeLine = string.Create(CultureInfo.InvariantCulture, $"VAE round trip of {nv} rendered held-out scenes: PSNR {rt.Psnr:F1} dB; background, shape and colour measured the same as in the original in {rt.AttributesKept}/{nv} (shape alone: small objects {rt.SmallShapesKept}/{rt.SmallScenes}, large {rt.LargeShapesKept}/{rt.LargeScenes}).");
                if (pr.GetValue(grid) is { } g)
                {
                    var vaePath = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(g)) ?? ".", Path.GetFileNameWithoutExtension(g) + "-vae.png");
                    using var vaeGrid = rt.Grid();
                    vaeGrid.SaveAsPng(vaePath);
                    Cli.Out.WriteLine($"wrote {vaePath}");
                }
            }
            using var result = TinyModelEvaluation.Run(m, options, new InlineProgress<(int, int)>(p => Cli.Err.Write($"\rgenerating {p.Item1}/{p.Item2}   ")), Cli.Cancellation);
            Cli.Err.WriteLine();
            var e = result.Evaluation;
            var md = new List<string>
            {
                "## Evaluation",
                "",
                string.Create(CultureInfo.InvariantCulture, $"`dreambooth tinyworld eval --samples {e.Images} --seed {options.Seed} --steps {options.Steps} --cfg-scale {options.GuidanceScale}` ({options.Sampler}), one image per caption of the TinyWorldDataset {options.Split} split (HeldOut: shape/background combinations never seen in training), measured by TinyWorldEvaluation:"),
                "",
                "| attribute | correct |",
                "|---|---|",
                $"| background | {e.Background} |",
                $"| shape | {e.Shape} |",
                $"| colour | {e.Color} |",
                $"| position | {e.Position} |",
                $"| size | {e.Size} |",
                $"| count | {e.Count} |",
                $"| object present | {e.ObjectPresent} |",
                $"| everything | {e.AllObeyed} |",
            };
            Cli.Out.WriteLine($"{options.Split} captions: {e.Images} (steps {options.Steps}, cfg {options.GuidanceScale.ToString(CultureInfo.InvariantCulture)}, {options.Sampler})");
            Cli.Out.WriteLine($"  background {e.Background}");
            Cli.Out.WriteLine($"  shape      {e.Shape}");
            Cli.Out.WriteLine($"  colour     {e.Color}");
            Cli.Out.WriteLine($"  position   {e.Position}");
            Cli.Out.WriteLine($"  size       {e.Size}");
            Cli.Out.WriteLine($"  count      {e.Count}");
            Cli.Out.WriteLine($"  present    {e.ObjectPresent}");
            Cli.Out.WriteLine($"  all        {e.AllObeyed}");
            var prompt = pr.GetValue(classPrompt);
            if (!string.IsNullOrWhiteSpace(prompt))
            {
                var items = TinyModelEvaluation.Prompt(m, prompt, 8, options.Seed, options, Cli.Cancellation);
                int ok = items.Count(i => i.Fidelity.Shape == true);
                Cli.Out.WriteLine($"  \"{prompt}\": shape right in {ok}/{items.Count}");
                md.Add("");
                md.Add($"Class prompt \"{prompt}\": the requested shape in {ok}/{items.Count} images (seeds {options.Seed}…{options.Seed + items.Count - 1}).");
                if (pr.GetValue(grid) is { } g2)
                {
                    var classPath = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(g2)) ?? ".", Path.GetFileNameWithoutExtension(g2) + "-class.png");
                    using var classGrid = GridCompositor.Compose([items.Select(i => (SixLabors.ImageSharp.Image<SixLabors.ImageSharp.PixelFormats.Rgb24>?)i.Image).ToList()], title: prompt);
                    classGrid.SaveAsPng(classPath);
                    Cli.Out.WriteLine($"wrote {classPath}");
                }
                foreach (var i in items) i.Image.Dispose();
            }
            md.Add("");
            md.Add(vaeLine);
            if (pr.GetValue(record))
            {
                TinyModelExport.RecordEvaluation(pr.GetValue(model)!, string.Join("\n", md));
                Cli.Out.WriteLine($"recorded in {Path.Combine(pr.GetValue(model)!, "README.md")}");
            }
            if (pr.GetValue(grid) is { } gridPath)
            {
                using var img = result.Grid();
                img.SaveAsPng(gridPath);
                Cli.Out.WriteLine($"wrote {gridPath}");
            }
            return Task.FromResult(0);
        });
        return cmd;
    }

    static int[] ParseInts(string text, string option)
    {
        try { return text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Select(x => int.Parse(x, CultureInfo.InvariantCulture)).ToArray(); }
        catch (FormatException) { throw new CliException($"{option} '{text}' is not a comma-separated list of integers (e.g. 64,128,128)"); }
    }

    static void torch_threads() => TorchSharp.torch.set_num_threads(2);

    /// <summary>data/models/tiny-sd/tokenizer found upward from the current folder.</summary>
    static string FindDefaultTokenizer()
    {
        for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir is not null; dir = dir.Parent)
        {
            var p = Path.Combine(dir.FullName, "data", "models", "tiny-sd", "tokenizer");
            if (File.Exists(Path.Combine(p, "vocab.json"))) return p;
        }
        throw new CliException("no tokenizer folder given and data/models/tiny-sd/tokenizer was not found above the current folder: pass --tokenizer <folder with vocab.json and merges.txt>");
    }

    /// <summary>One console line updated in place per stage.</summary>
    sealed class ConsoleProgress : IProgress<PretrainProgress>
    {
        PretrainStage? last;
        DateTime lastWrite;

        public void Report(PretrainProgress p)
        {
            var now = DateTime.UtcNow;
            bool stageChanged = last != p.Stage;
            if (!stageChanged && p.Step != p.Total && (now - lastWrite).TotalSeconds < 1) return;
            if (stageChanged && last is not null) Cli.Err.WriteLine();
            last = p.Stage;
            lastWrite = now;
            var loss = double.IsNaN(p.Loss) ? "" : string.Create(CultureInfo.InvariantCulture, $"  loss {p.Loss:F4}");
            var rate = p.Step > 0 ? "" : "";
            Cli.Err.Write(string.Create(CultureInfo.InvariantCulture, $"\r{p.Stage,-8} {p.Step,6}/{p.Total,-6}{loss}  {p.Elapsed:hh\\:mm\\:ss}{rate}   "));
        }

        public void Done() => Cli.Err.WriteLine();
    }
}
