using System.CommandLine;
using DreamBooth.Loading;
using DreamBooth.Training;
using DreamBooth.Training.Optim;
using TorchSharp;

namespace DreamBooth.Cli.Commands;

/// <summary>`dreambooth train`: trains (or resumes) a session; options given here are saved into the session.</summary>
public static class TrainCommand
{
    public static Command Create()
    {
        var session = new Argument<string>("session") { Description = "The session folder (create it with `dreambooth session new`)." };
        var steps = new Option<int?>("--steps") { Description = "Total UNet steps of the session (resume continues up to this)." };
        var lr = new Option<double?>("--lr") { Description = "UNet learning rate (default 2e-6 full, 1e-4 LoRA)." };
        var teSteps = new Option<int?>("--text-encoder-steps") { Description = "Train the text encoder for its first N steps, then freeze it." };
        var teLr = new Option<double?>("--text-encoder-lr") { Description = "Text encoder learning rate." };
        var teTraining = new Option<string?>("--text-encoder-training") { Description = "What the text-encoder steps train: full (every weight, the default) or identifier (only the identifier's token embeddings: every other word keeps its meaning; give it a higher --text-encoder-lr, e.g. 1e-3). Full fine-tuning only." };
        var prior = new Option<bool?>("--prior-preservation") { Description = "Generate class images and add the prior loss (true/false)." };
        var classImages = new Option<int?>("--class-images") { Description = "Class images per concept for prior preservation." };
        var batchSize = new Option<int?>("--batch-size") { Description = "Instance images per step (default 1; with prior preservation as many class images are added)." };
        var accumulation = new Option<int?>("--gradient-accumulation") { Description = "Batches whose gradients are summed into one optimiser step (default 1: a larger effective batch without the memory)." };
        var classBatch = new Option<int?>("--class-image-batch") { Description = "Class images generated per call (default 4; lower it if generating them runs out of memory)." };
        var precision = new Option<string?>("--precision") { Description = "fp32 or bf16." };
        var optimizer = new Option<string?>("--optimizer") { Description = "adamw or adamw8bit." };
        var gc = new Option<bool?>("--gradient-checkpointing") { Description = "Recompute activations in backward (less memory)." };
        var loraRank = new Option<int?>("--lora-rank") { Description = "Train rank-r LoRA adapters instead of full weights." };
        var ckEvery = new Option<int?>("--checkpoint-every") { Description = "Write a checkpoint every N steps." };
        var valEvery = new Option<int?>("--validate-every") { Description = "Write validation samples every N steps." };
        var seed = new Option<long?>("--seed") { Description = "Training seed." };
        var noResume = new Option<bool>("--no-resume") { Description = "Ignore existing checkpoints (they are kept; new ones overwrite equal steps)." };
        var device = new Option<string>("--device") { Description = "cpu, cuda or auto.", DefaultValueFactory = _ => "auto" };
        var threads = new Option<int?>("--threads") { Description = "CPU threads for libtorch (fixed thread count makes CPU runs reproducible)." };
        var quiet = new Option<bool>("--quiet") { Description = "No progress bar." };
        var minSnr = new Option<double?>("--min-snr-gamma") { Description = "Min-SNR-γ loss weighting (5 is the paper's value; 0 turns it off)." };
        var offsetNoise = new Option<double?>("--offset-noise") { Description = "Offset noise strength (0.05–0.1 helps very dark or bright images; 0 = off)." };
        var timestepBias = new Option<string?>("--timestep-bias") { Description = "Biased timestep sampling: none, earlier[:MULT[:PORTION]], later[:MULT[:PORTION]] or range:MULT:BEGIN-END (diffusers' --timestep_bias_*)." };
        var masked = new Option<bool?>("--masked-loss") { Description = "Masked training: weight the loss by each instance image's mask file (name-masklabel.png beside it, white = subject; imported by `images add`) (true/false)." };
        var unmaskedWeight = new Option<double?>("--unmasked-weight") { Description = "With --masked-loss: the loss weight outside the mask, 0–1 (default 0.1)." };
        var blockLr = new Option<string?>("--unet-block-lr") { Description = "UNet learning-rate multipliers \"down,mid,up\" for full fine-tuning (kohya's block learning rates; 0 freezes a part, e.g. 0,1,1; default 1,1,1)." };
        var classFromCaptions = new Option<bool?>("--class-prompts-from-captions") { Description = "Generate each class image from an instance caption minus the identifier, and caption it so (true/false; lower leakage). Delete existing class images to regenerate." };
        var cmd = new Command("train", "Train or resume a DreamBooth session (Ctrl+C stops after writing a checkpoint).")
        {
            session, steps, lr, teSteps, teLr, teTraining, batchSize, accumulation, prior, classImages, classBatch, precision, optimizer, gc, loraRank, ckEvery, valEvery, seed, blockLr, minSnr, offsetNoise, timestepBias, classFromCaptions, masked, unmaskedWeight, noResume, device, threads, quiet,
        };
        cmd.SetAction(pr =>
        {
            if (pr.GetValue(threads) is int t)
            {
                if (t < 1) throw new CliException($"--threads must be ≥ 1 (got {t})");
                torch.set_num_threads(t);
            }
            var s = DreamBoothSession.Load(pr.GetValue(session)!);
            var o = s.File.Options;
            o = o with
            {
                UnetSteps = pr.GetValue(steps) ?? o.UnetSteps,
                UnetLearningRate = pr.GetValue(lr) ?? o.UnetLearningRate,
                TextEncoderSteps = pr.GetValue(teSteps) ?? o.TextEncoderSteps,
                TextEncoderLearningRate = pr.GetValue(teLr) ?? o.TextEncoderLearningRate,
                TextEncoderTraining = pr.GetValue(teTraining) is { } tt ? ParseTextEncoderTraining(tt) : o.TextEncoderTraining,
                BatchSize = pr.GetValue(batchSize) ?? o.BatchSize,
                GradientAccumulationSteps = pr.GetValue(accumulation) ?? o.GradientAccumulationSteps,
                PriorPreservation = pr.GetValue(prior) ?? o.PriorPreservation,
                NumClassImages = pr.GetValue(classImages) ?? o.NumClassImages,
                ClassImageBatchSize = pr.GetValue(classBatch) ?? o.ClassImageBatchSize,
                Precision = pr.GetValue(precision) is { } p ? ParsePrecision(p) : o.Precision,
                Optimizer = pr.GetValue(optimizer) is { } op ? ParseOptimizer(op) : o.Optimizer,
                GradientCheckpointing = pr.GetValue(gc) ?? o.GradientCheckpointing,
                Lora = pr.GetValue(loraRank) is int r ? new LoraOptions { Rank = r, Alpha = r } : o.Lora,
                CheckpointEvery = pr.GetValue(ckEvery) ?? o.CheckpointEvery,
                ValidationEvery = pr.GetValue(valEvery) ?? o.ValidationEvery,
                Seed = pr.GetValue(seed) ?? o.Seed,
                MinSnrGamma = pr.GetValue(minSnr) is double g ? (g == 0 ? null : g) : o.MinSnrGamma,
                OffsetNoise = pr.GetValue(offsetNoise) ?? o.OffsetNoise,
                TimestepBias = pr.GetValue(timestepBias) is { } tb ? ParseTimestepBias(tb) : o.TimestepBias,
                ClassPromptsFromCaptions = pr.GetValue(classFromCaptions) ?? o.ClassPromptsFromCaptions,
                MaskedLoss = pr.GetValue(masked) ?? o.MaskedLoss,
                UnmaskedWeight = pr.GetValue(unmaskedWeight) ?? o.UnmaskedWeight,
                UnetBlockLearningRates = pr.GetValue(blockLr) is { } bl ? ParseBlockLearningRates(bl) : o.UnetBlockLearningRates,
            };
            try { o.Validate(); }
            catch (ArgumentException e)
            {
                // name the option that sets the refused TrainingOptions property, when this command has one
                var option = cmd.Options.FirstOrDefault(opt => string.Equals(opt.Name.Replace("-", ""), e.ParamName, StringComparison.OrdinalIgnoreCase));
                var message = e.ParamName is { } param ? e.Message.Replace($" (Parameter '{param}')", "") : e.Message;
                throw new CliException(option is null ? $"{message} (set it with the matching --option)" : $"{message}; set it with {option.Name}");
            }
            s.Update(f => f with { Options = o });
            var (dev, _) = GenerationOptions.Placement(GenerationOptions.ParseDevice(pr.GetValue(device)!), DTypeChoice.Fp32);
            using var model = ModelSource.Load(s.File.BaseModel, dev, torch.ScalarType.Float32);
            var token = Cli.Cancellation;
            using var announce = token.Register(() => Cli.Err.WriteLine("\nstopping after this step; writing a checkpoint…"));
            {
                var bar = pr.GetValue(quiet) ? null : ConsoleProgressBar.ForStderr("train");
                var trainer = new DreamBoothTrainer(s, model);
                var result = trainer.Train(new InlineProgress<TrainingProgress>(p =>
                {
                    if (bar is null) return;
                    if (p.Phase == "training" && p.Last is { } l)
                        bar.Update(p.Step, p.TotalSteps, $"loss {l.Loss:F4} lr {l.LearningRate:G3} {l.Seconds:F2}s/step");
                    else if (p.Message is not null) Cli.Err.WriteLine($"[{p.Phase}] {p.Message}");
                }), token, resume: !pr.GetValue(noResume));
                bar?.Finish();
                if (result.StoppedReason is not null)
                {
                    Cli.Err.WriteLine($"error: {result.StoppedReason}");
                    return 1;
                }
                Cli.Out.WriteLine(result.Cancelled
                    ? $"stopped at step {result.Step}; resume with `dreambooth train {s.Folder}`"
                    : $"trained to step {result.Step}");
                if (result.DiscardedSteps > 0) Cli.Out.WriteLine($"{result.DiscardedSteps} batch(es) discarded (non-finite loss or gradient; see TrainingOptions.MaxNonFiniteStepsInARow)");
                if (result.LastCheckpoint is not null) Cli.Out.WriteLine($"checkpoint: {result.LastCheckpoint}");
                foreach (var sample in result.Samples) Cli.Out.WriteLine($"sample: {sample}");
                return 0;
            }
        });
        return cmd;
    }

    internal static TimestepBias ParseTimestepBias(string s)
    {
        try { return TimestepBias.Parse(s); }
        catch (FormatException e) { throw new CliException($"--timestep-bias: {e.Message}"); }
    }

    /// <summary>"full" or "identifier" (also the enum names); anything else is refused naming the option.</summary>
    internal static TextEncoderTraining ParseTextEncoderTraining(string s) => s.Trim().ToLowerInvariant() switch
    {
        "full" => TextEncoderTraining.Full,
        "identifier" or "identifierembeddings" or "identifier-embeddings" => TextEncoderTraining.IdentifierEmbeddings,
        _ => throw new CliException($"--text-encoder-training: '{s}' is not a choice; use full (every weight) or identifier (only the identifier's token embeddings)"),
    };

    static UnetBlockLearningRates ParseBlockLearningRates(string s)
    {
        try { return UnetBlockLearningRates.Parse(s); }
        catch (ArgumentException e) { throw new CliException($"--unet-block-lr: {e.Message.Replace($" (Parameter '{e.ParamName}')", "")}"); }
    }

    static TrainingPrecision ParsePrecision(string s) => s.ToLowerInvariant() switch
    {
        "fp32" or "float32" => TrainingPrecision.Fp32,
        "bf16" or "bfloat16" => TrainingPrecision.Bf16,
        _ => throw new CliException($"--precision must be fp32 or bf16 (got '{s}')"),
    };

    static OptimizerKind ParseOptimizer(string s) => s.ToLowerInvariant().Replace("-", "").Replace("_", "") switch
    {
        "adamw" => OptimizerKind.AdamW,
        "adamw8bit" or "adam8bit" => OptimizerKind.AdamW8bit,
        _ => throw new CliException($"--optimizer must be adamw or adamw8bit (got '{s}')"),
    };
}
