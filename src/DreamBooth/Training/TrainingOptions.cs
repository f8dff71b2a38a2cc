using System.Text.Json.Serialization;
using DreamBooth.Training.Optim;

namespace DreamBooth.Training;

/// <summary>Optimizer choice.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<OptimizerKind>))]
public enum OptimizerKind
{
    /// <summary>AdamW with fp32 states (torch.optim.AdamW maths).</summary>
    AdamW,
    /// <summary>AdamW with block-wise 8-bit quantized states (bitsandbytes-style): ~4× less optimizer memory.</summary>
    AdamW8bit,
}

/// <summary>Compute precision of the trained networks.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<TrainingPrecision>))]
public enum TrainingPrecision
{
    /// <summary>Everything in float32.</summary>
    Fp32,
    /// <summary>
    /// bf16 done explicitly (TorchSharp has no autocast): the UNet and text encoder are held and run in bfloat16; the
    /// optimizer updates each weight in float32 and writes it back with stochastic rounding, so no fp32 master copy is
    /// kept (half the weight memory). LoRA adapters stay in float32 on the bf16 base.
    /// </summary>
    Bf16,
}

/// <summary>What of the text encoder is trained during its <see cref="TrainingOptions.TextEncoderSteps"/>.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<TextEncoderTraining>))]
public enum TextEncoderTraining
{
    /// <summary>Every weight of the text encoder (the fast-DreamBooth Colab's and diffusers' <c>--train_text_encoder</c>).</summary>
    Full,
    /// <summary>
    /// Only the token-embedding rows of the concepts' identifiers (<see cref="IdentifierEmbeddings"/>; the textual-inversion
    /// half of pivotal tuning): the identifier gets its own learnt meaning while every other word keeps the base model's.
    /// </summary>
    IdentifierEmbeddings,
}

/// <summary>
/// Everything that defines a DreamBooth run. Defaults follow the fast-DreamBooth Colab where it had one (UNet LR 2e-6
/// for full fine-tuning, text encoder trained for its first steps then frozen) and diffusers' train_dreambooth otherwise.
/// </summary>
public sealed record TrainingOptions
{
    /// <summary>Training resolution in pixels (a multiple of 64 for real SD; of the VAE factor × 8 in general).</summary>
    public int Resolution { get; init; } = 512;

    /// <summary>Total UNet optimisation steps of this run (with resume: the total, counting steps already done).</summary>
    public int UnetSteps { get; init; } = 1500;

    public double UnetLearningRate { get; init; } = 2e-6;

    /// <summary>
    /// Per-part multipliers of <see cref="UnetLearningRate"/> for full fine-tuning (kohya's block learning rates): the
    /// UNet's input side, middle block and output side each get their own optimizer group; a multiplier of 0 freezes
    /// that part. Default 1 / 1 / 1 (one learning rate for the whole UNet).
    /// </summary>
    public UnetBlockLearningRates UnetBlockLearningRates { get; init; } = new();

    /// <summary>The text encoder trains for its first N steps, then it is frozen (as in the Colab). 0 = never trained.</summary>
    public int TextEncoderSteps { get; init; } = 350;

    public double TextEncoderLearningRate { get; init; } = 1e-6;

    /// <summary>
    /// What the text-encoder steps train: the whole encoder (default) or only the identifier's token embeddings
    /// (<see cref="TextEncoderTraining.IdentifierEmbeddings"/>, which usually wants a higher
    /// <see cref="TextEncoderLearningRate"/>, as textual inversion does: on the tiny model's mini DreamBench 50 steps at 1e-3
    /// lifted subject fidelity from 0.722 to 0.770 at 800 UNet steps, and let the UNet train 1,000 steps to 0.82 — with the
    /// whole encoder longer training had been worse; see docs/tiny-world-dreambench.md). Full fine-tuning only.
    /// </summary>
    public TextEncoderTraining TextEncoderTraining { get; init; } = TextEncoderTraining.Full;

    /// <summary>Instance images per step (class images are added on top when prior preservation is on).</summary>
    public int BatchSize { get; init; } = 1;

    public int GradientAccumulationSteps { get; init; } = 1;

    public bool PriorPreservation { get; init; } = true;

    public double PriorLossWeight { get; init; } = 1.0;

    /// <summary>Class images per concept for prior preservation (generated once and cached in the session).</summary>
    public int NumClassImages { get; init; } = 200;

    /// <summary>Sampling steps used to generate class images.</summary>
    public int ClassImageSteps { get; init; } = 25;

    /// <summary>
    /// Class images generated per pipeline call (diffusers' <c>--sample_batch_size</c>): images that share a prompt are
    /// denoised together, each from its own seed, so the images are the same as one at a time (up to float rounding)
    /// and faster — on 2 CPU cores the tiny model's 40 class images take about half the time with 4 per call.
    /// </summary>
    public int ClassImageBatchSize { get; init; } = 4;

    /// <summary>
    /// Captioned prior preservation: each class image is generated from an instance caption with the identifier removed
    /// ("a zwx diamond on a red background" → "a diamond on a red background") and keeps it as its sidecar caption,
    /// instead of every class image coming from the class prompt. Measured on the demo subject (probe, 800 steps, training
    /// seeds 1234 / 1 / 2): leakage 42 % → 0 %, subject fidelity 0.42 → 0.53, but the subject's position drifts more.
    /// Off by default; class images already in the session are kept, so delete them to regenerate after switching.
    /// </summary>
    public bool ClassPromptsFromCaptions { get; init; }

    public LrScheduleKind LrSchedule { get; init; } = LrScheduleKind.Constant;

    public int LrWarmupSteps { get; init; }

    public OptimizerKind Optimizer { get; init; } = OptimizerKind.AdamW;

    public double AdamBeta1 { get; init; } = 0.9;
    public double AdamBeta2 { get; init; } = 0.999;
    public double AdamEpsilon { get; init; } = 1e-8;
    public double WeightDecay { get; init; } = 1e-2;

    public TrainingPrecision Precision { get; init; } = TrainingPrecision.Fp32;

    public bool GradientCheckpointing { get; init; }

    /// <summary>Clip the global gradient norm to this (0 = off).</summary>
    public double MaxGradNorm { get; init; } = 1.0;

    /// <summary>
    /// A step whose loss or gradient is not finite (NaN or ∞) is discarded — no update, the next batch is drawn — as
    /// PyTorch's <c>GradScaler</c> skips such steps; after this many discarded in a row, training stops with the last
    /// good checkpoint named (0 = stop at the first). A lone non-finite step is not divergence: libtorch 2.10's oneDNN
    /// convolution backward returns NaN for about one batch in 150–300 on some CPUs (measured on an AMD EPYC with
    /// AVX-512, with 1 or 2 threads, any ISA limit; never with oneDNN off), while diverging weights fail every step.
    /// </summary>
    public int MaxNonFiniteStepsInARow { get; init; } = 3;

    /// <summary>Offset noise (noise + offset·N(0,1) per channel), 0 = off; ~0.05–0.1 helps very dark / bright images.</summary>
    public double OffsetNoise { get; init; }

    /// <summary>Min-SNR-γ loss weighting (Hang et al. 2023); null = off, 5 is the paper's value.</summary>
    public double? MinSnrGamma { get; init; }

    /// <summary>
    /// Masked training (kohya's <c>--masked_loss</c>, OneTrainer's "masked training"): an instance image with a mask
    /// file beside it (<c>&lt;name&gt;-masklabel.png</c>, white = the subject, black = the rest; <see cref="MaskFiles"/>)
    /// has its diffusion loss weighted per latent pixel by <see cref="UnmaskedWeight"/> + (1 − UnmaskedWeight) · mask,
    /// normalised by the weights' mean, so a small subject is not drowned by its background in the loss. Images without a
    /// mask and class images train unmasked.
    /// </summary>
    public bool MaskedLoss { get; init; }

    /// <summary>With <see cref="MaskedLoss"/>: the loss weight of the pixels outside the mask (0–1; OneTrainer's default 0.1).</summary>
    public double UnmaskedWeight { get; init; } = 0.1;

    /// <summary>Biased timestep sampling (diffusers' <c>--timestep_bias_*</c>); uniform by default.</summary>
    public TimestepBias TimestepBias { get; init; } = new();

    public long Seed { get; init; } = 1337;

    /// <summary>Write a checkpoint every N steps (0 = only at the end).</summary>
    public int CheckpointEvery { get; init; } = 500;

    /// <summary>How many checkpoints to keep (the oldest are deleted).</summary>
    public int KeepCheckpoints { get; init; } = 3;

    /// <summary>Generate validation samples every N steps (0 = off).</summary>
    public int ValidationEvery { get; init; }

    public IReadOnlyList<string> ValidationPrompts { get; init; } = [];

    public long ValidationSeed { get; init; } = 42;

    public int ValidationSteps { get; init; } = 20;

    /// <summary>Train LoRA adapters instead of full weights when set.</summary>
    public LoraOptions? Lora { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the option and the fix.</summary>
    public void Validate()
    {
        static void Check(bool ok, string option, string message)
        {
            if (!ok) throw new ArgumentException($"{option}: {message}", option);
        }
        Check(Resolution > 0 && Resolution % 8 == 0, nameof(Resolution), $"must be a positive multiple of 8 (64 for Stable Diffusion: 512, 768), got {Resolution}");
        Check(UnetSteps >= 0, nameof(UnetSteps), $"must be ≥ 0, got {UnetSteps}");
        Check(TextEncoderSteps >= 0, nameof(TextEncoderSteps), $"must be ≥ 0, got {TextEncoderSteps}");
        Check(UnetLearningRate > 0 && UnetLearningRate < 1, nameof(UnetLearningRate), $"must be in (0, 1), got {UnetLearningRate} (typical: 1e-6 … 5e-6 full, 1e-4 LoRA)");
        Check(TextEncoderSteps == 0 || (TextEncoderLearningRate > 0 && TextEncoderLearningRate < 1), nameof(TextEncoderLearningRate), $"must be in (0, 1), got {TextEncoderLearningRate}");
        Check(BatchSize >= 1, nameof(BatchSize), $"must be ≥ 1, got {BatchSize}");
        Check(GradientAccumulationSteps >= 1, nameof(GradientAccumulationSteps), $"must be ≥ 1, got {GradientAccumulationSteps}");
        Check(PriorLossWeight >= 0, nameof(PriorLossWeight), $"must be ≥ 0, got {PriorLossWeight}");
        Check(!PriorPreservation || NumClassImages >= 1, nameof(NumClassImages), "must be ≥ 1 when prior preservation is on (or turn PriorPreservation off)");
        Check(LrWarmupSteps >= 0, nameof(LrWarmupSteps), $"must be ≥ 0, got {LrWarmupSteps}");
        Check(MaxGradNorm >= 0, nameof(MaxGradNorm), $"must be ≥ 0 (0 = off), got {MaxGradNorm}");
        Check(MaxNonFiniteStepsInARow >= 0, nameof(MaxNonFiniteStepsInARow), $"must be ≥ 0 (0 = stop at the first non-finite step), got {MaxNonFiniteStepsInARow}");
        Check(OffsetNoise >= 0 && OffsetNoise < 1, nameof(OffsetNoise), $"must be in [0, 1), got {OffsetNoise}");
        Check(UnmaskedWeight is >= 0 and <= 1, nameof(UnmaskedWeight), $"must be in [0, 1] (the loss weight outside the mask; 0.1 is usual), got {UnmaskedWeight}");
        Check(MinSnrGamma is null || MinSnrGamma > 0, nameof(MinSnrGamma), $"must be > 0 (5 is usual) or unset, got {MinSnrGamma}");
        Check(CheckpointEvery >= 0, nameof(CheckpointEvery), $"must be ≥ 0, got {CheckpointEvery}");
        Check(KeepCheckpoints >= 1, nameof(KeepCheckpoints), $"must be ≥ 1, got {KeepCheckpoints}");
        Check(ValidationEvery >= 0, nameof(ValidationEvery), $"must be ≥ 0, got {ValidationEvery}");
        Check(AdamBeta1 is >= 0 and < 1 && AdamBeta2 is >= 0 and < 1, "AdamBeta1/AdamBeta2", "must be in [0, 1)");
        Check(ClassImageSteps >= 1, nameof(ClassImageSteps), $"must be ≥ 1, got {ClassImageSteps}");
        Check(ClassImageBatchSize is >= 1 and <= 64, nameof(ClassImageBatchSize), $"must be in 1…64, got {ClassImageBatchSize}");
        Check(TimestepBias is not null, nameof(TimestepBias), "must not be null (use new TimestepBias() for uniform timesteps)");
        TimestepBias!.Validate();
        Lora?.Validate();
        Check(UnetBlockLearningRates is not null, nameof(UnetBlockLearningRates), "must not be null (use new UnetBlockLearningRates() for one learning rate)");
        UnetBlockLearningRates!.Validate();
        Check(Enum.IsDefined(TextEncoderTraining), nameof(TextEncoderTraining), $"must be Full or IdentifierEmbeddings, got {TextEncoderTraining}");
        Check(Lora is null || TextEncoderTraining == TextEncoderTraining.Full, nameof(TextEncoderTraining),
            "IdentifierEmbeddings applies to full fine-tuning; with LoRA leave it at Full (Lora.TrainTextEncoder trains text-encoder adapters)");
        Check(Lora is null || UnetBlockLearningRates.IsUniform, nameof(UnetBlockLearningRates),
            $"block multipliers ({UnetBlockLearningRates}) apply to full fine-tuning; with LoRA leave them at 1 / 1 / 1");
    }
}

/// <summary>
/// Learning-rate multipliers for the three parts of a UNet: <see cref="Down"/> (conv_in, the time embedding and the
/// down blocks), <see cref="Mid"/> (the middle block) and <see cref="Up"/> (the up blocks and the output layers).
/// 0 freezes a part; at least one must be above 0.
/// </summary>
public sealed record UnetBlockLearningRates
{
    public double Down { get; init; } = 1;
    public double Mid { get; init; } = 1;
    public double Up { get; init; } = 1;

    /// <summary>True when every part trains at the base learning rate.</summary>
    [JsonIgnore]
    public bool IsUniform => Down == 1 && Mid == 1 && Up == 1;

    /// <summary>The part a UNet parameter (diffusers name, e.g. <c>up_blocks.1.attentions.0…</c>) belongs to.</summary>
    public static string PartOf(string parameterName) =>
        parameterName.StartsWith("mid_block.", StringComparison.Ordinal) ? "mid"
        : parameterName.StartsWith("up_blocks.", StringComparison.Ordinal) || parameterName.StartsWith("conv_norm_out.", StringComparison.Ordinal)
          || parameterName.StartsWith("conv_out.", StringComparison.Ordinal) ? "up"
        : "down";

    /// <summary>
    /// True when <paramref name="other"/> makes the same optimizer groups (one group when uniform, else one per trained
    /// part), so a checkpoint's optimizer state fits: only the non-zero multipliers' values may differ.
    /// </summary>
    public bool SameGroups(UnetBlockLearningRates other) =>
        IsUniform == other.IsUniform && (Down == 0) == (other.Down == 0) && (Mid == 0) == (other.Mid == 0) && (Up == 0) == (other.Up == 0);

    /// <summary>The multiplier of a part named by <see cref="PartOf"/>.</summary>
    public double Multiplier(string part) => part switch { "mid" => Mid, "up" => Up, _ => Down };

    /// <summary>Parses "down,mid,up" (e.g. "0,0.5,1"), as the CLI's <c>--unet-block-lr</c> takes it.</summary>
    public static UnetBlockLearningRates Parse(string text)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries);
        var values = new double[parts.Length];
        if (parts.Length != 3 || Enumerable.Range(0, parts.Length).Any(i => !double.TryParse(parts[i], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out values[i])))
            throw new ArgumentException($"UnetBlockLearningRates: expected three numbers \"down,mid,up\" such as \"0,1,1\" (0 freezes a part), got \"{text}\"", nameof(text));
        var r = new UnetBlockLearningRates { Down = values[0], Mid = values[1], Up = values[2] };
        r.Validate();
        return r;
    }

    public void Validate()
    {
        foreach (var (name, v) in new[] { (nameof(Down), Down), (nameof(Mid), Mid), (nameof(Up), Up) })
            if (!double.IsFinite(v) || v < 0)
                throw new ArgumentException($"UnetBlockLearningRates.{name}: must be a finite number ≥ 0 (0 freezes that part), got {v}", name);
        if (Down == 0 && Mid == 0 && Up == 0)
            throw new ArgumentException("UnetBlockLearningRates: all three parts are frozen; at least one multiplier must be above 0 (or set UnetSteps to 0)", nameof(Down));
    }

    public override string ToString() => FormattableString.Invariant($"{Down},{Mid},{Up}");
}

/// <summary>LoRA: rank-r adapters on the attention projections instead of full weights.</summary>
public sealed record LoraOptions
{
    public int Rank { get; init; } = 4;

    /// <summary>Scale numerator: the adapter output is multiplied by Alpha / Rank (kohya convention).</summary>
    public double Alpha { get; init; } = 4;

    /// <summary>Also put adapters on the text encoder's attention projections.</summary>
    public bool TrainTextEncoder { get; init; }

    public void Validate()
    {
        if (Rank < 1 || Rank > 1024) throw new ArgumentException($"Lora.Rank: must be in 1…1024, got {Rank}", nameof(Rank));
        if (!(Alpha > 0)) throw new ArgumentException($"Lora.Alpha: must be > 0, got {Alpha}", nameof(Alpha));
    }
}
