using System.Text.Json;
using System.Text.Json.Serialization;
using DreamBooth.Loading;

namespace DreamBooth.Sampling;

/// <summary>How betas are laid out over the training timesteps (diffusers <c>beta_schedule</c>).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<BetaSchedule>))]
public enum BetaSchedule
{
    /// <summary><c>linear</c>: linspace(beta_start, beta_end).</summary>
    [JsonStringEnumMemberName("linear")] Linear,
    /// <summary><c>scaled_linear</c>: linspace(sqrt(beta_start), sqrt(beta_end))², the Stable Diffusion schedule.</summary>
    [JsonStringEnumMemberName("scaled_linear")] ScaledLinear,
    /// <summary><c>squaredcos_cap_v2</c>: the Glide / improved-DDPM cosine schedule, betas capped at 0.999.</summary>
    [JsonStringEnumMemberName("squaredcos_cap_v2")] SquaredCosCapV2,
}

/// <summary>What the denoiser predicts (diffusers <c>prediction_type</c>).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<PredictionType>))]
public enum PredictionType
{
    /// <summary>The added noise ε.</summary>
    [JsonStringEnumMemberName("epsilon")] Epsilon,
    /// <summary>The velocity v = √ᾱ·ε − √(1−ᾱ)·x₀ (Salimans &amp; Ho 2022).</summary>
    [JsonStringEnumMemberName("v_prediction")] VPrediction,
    /// <summary>The clean sample x₀.</summary>
    [JsonStringEnumMemberName("sample")] Sample,
}

/// <summary>How inference timesteps are spread (Lin et al. 2023, "Common Diffusion Noise Schedules…", table 2).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<TimestepSpacing>))]
public enum TimestepSpacing
{
    [JsonStringEnumMemberName("leading")] Leading,
    [JsonStringEnumMemberName("trailing")] Trailing,
    [JsonStringEnumMemberName("linspace")] Linspace,
}

/// <summary>Euler's sigma interpolation between training timesteps.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<InterpolationType>))]
public enum InterpolationType
{
    [JsonStringEnumMemberName("linear")] Linear,
    [JsonStringEnumMemberName("log_linear")] LogLinear,
}

/// <summary>DDPM posterior variance choice.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<VarianceType>))]
public enum VarianceType
{
    [JsonStringEnumMemberName("fixed_small")] FixedSmall,
    [JsonStringEnumMemberName("fixed_small_log")] FixedSmallLog,
    [JsonStringEnumMemberName("fixed_large")] FixedLarge,
    [JsonStringEnumMemberName("fixed_large_log")] FixedLargeLog,
    [JsonStringEnumMemberName("learned")] Learned,
    [JsonStringEnumMemberName("learned_range")] LearnedRange,
}

/// <summary>DPM-Solver family (Lu et al. 2022): noise- or data-prediction, ODE or SDE.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<DpmAlgorithmType>))]
public enum DpmAlgorithmType
{
    [JsonStringEnumMemberName("dpmsolver++")] DpmSolverPlusPlus,
    [JsonStringEnumMemberName("sde-dpmsolver++")] SdeDpmSolverPlusPlus,
    [JsonStringEnumMemberName("dpmsolver")] DpmSolver,
    [JsonStringEnumMemberName("sde-dpmsolver")] SdeDpmSolver,
    /// <summary>Written by DEIS configs; diffusers maps it to dpmsolver++.</summary>
    [JsonStringEnumMemberName("deis")] Deis,
}

/// <summary>Second-order update rule of DPM-Solver multistep.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<DpmSolverType>))]
public enum DpmSolverType
{
    [JsonStringEnumMemberName("midpoint")] Midpoint,
    [JsonStringEnumMemberName("heun")] Heun,
    /// <summary>DEIS name; diffusers maps it to midpoint.</summary>
    [JsonStringEnumMemberName("logrho")] LogRho,
    /// <summary>UniPC B(h) = h.</summary>
    [JsonStringEnumMemberName("bh1")] Bh1,
    /// <summary>UniPC B(h) = eʰ − 1.</summary>
    [JsonStringEnumMemberName("bh2")] Bh2,
}

/// <summary>The sigma after the last step of DPM-Solver / UniPC.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<FinalSigmasType>))]
public enum FinalSigmasType
{
    [JsonStringEnumMemberName("zero")] Zero,
    [JsonStringEnumMemberName("sigma_min")] SigmaMin,
}

/// <summary>Euler's timestep values: discrete training indices or EDM-style continuous 0.25·log σ.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<TimestepType>))]
public enum TimestepType
{
    [JsonStringEnumMemberName("discrete")] Discrete,
    [JsonStringEnumMemberName("continuous")] Continuous,
}

/// <summary>
/// A diffusers <c>scheduler/scheduler_config.json</c> (v0.27.2 field names). One record serves every scheduler
/// class: fields a class does not use are ignored by it, unknown JSON fields are ignored. Fields whose diffusers
/// default differs between classes are nullable and resolved by the sampler (e.g. <see cref="TimestepSpacing"/>
/// defaults to leading for DDIM/DDPM/PNDM and linspace for the k-diffusion style samplers).
/// </summary>
public sealed record SchedulerConfig
{
    /// <summary>The diffusers class that wrote the file, e.g. <c>PNDMScheduler</c>.</summary>
    [JsonPropertyName("_class_name")] public string? ClassName { get; init; }
    [JsonPropertyName("_diffusers_version")] public string? DiffusersVersion { get; init; }

    [JsonPropertyName("num_train_timesteps")] public int NumTrainTimesteps { get; init; } = 1000;
    [JsonPropertyName("beta_start")] public double BetaStart { get; init; } = 0.0001;
    [JsonPropertyName("beta_end")] public double BetaEnd { get; init; } = 0.02;
    [JsonPropertyName("beta_schedule")] public BetaSchedule BetaSchedule { get; init; } = BetaSchedule.Linear;
    /// <summary>Explicit betas; when set they replace beta_start/beta_end/beta_schedule.</summary>
    [JsonPropertyName("trained_betas")] public double[]? TrainedBetas { get; init; }
    [JsonPropertyName("prediction_type")] public PredictionType PredictionType { get; init; } = PredictionType.Epsilon;
    /// <summary>Null: the class default (leading for DDPM/DDIM/PNDM, linspace otherwise).</summary>
    [JsonPropertyName("timestep_spacing")] public TimestepSpacing? TimestepSpacing { get; init; }
    [JsonPropertyName("steps_offset")] public int StepsOffset { get; init; }
    /// <summary>Null: the class default (true for DDIM, false for PNDM).</summary>
    [JsonPropertyName("set_alpha_to_one")] public bool? SetAlphaToOne { get; init; }
    /// <summary>Null: the class default (true for DDPM/DDIM, false elsewhere).</summary>
    [JsonPropertyName("clip_sample")] public bool? ClipSample { get; init; }
    [JsonPropertyName("clip_sample_range")] public double ClipSampleRange { get; init; } = 1.0;
    /// <summary>Dynamic thresholding (Imagen); only "off" is supported here.</summary>
    [JsonPropertyName("thresholding")] public bool Thresholding { get; init; }
    [JsonPropertyName("dynamic_thresholding_ratio")] public double DynamicThresholdingRatio { get; init; } = 0.995;
    [JsonPropertyName("sample_max_value")] public double SampleMaxValue { get; init; } = 1.0;
    [JsonPropertyName("rescale_betas_zero_snr")] public bool RescaleBetasZeroSnr { get; init; }
    [JsonPropertyName("use_karras_sigmas")] public bool UseKarrasSigmas { get; init; }
    [JsonPropertyName("sigma_min")] public double? SigmaMin { get; init; }
    [JsonPropertyName("sigma_max")] public double? SigmaMax { get; init; }
    [JsonPropertyName("interpolation_type")] public InterpolationType InterpolationType { get; init; } = InterpolationType.Linear;
    [JsonPropertyName("timestep_type")] public TimestepType TimestepType { get; init; } = TimestepType.Discrete;
    /// <summary>DDPM variance; null means fixed_small (the DDPM default).</summary>
    [JsonPropertyName("variance_type")] public VarianceType? VarianceType { get; init; }
    [JsonPropertyName("solver_order")] public int SolverOrder { get; init; } = 2;
    [JsonPropertyName("algorithm_type")] public DpmAlgorithmType AlgorithmType { get; init; } = DpmAlgorithmType.DpmSolverPlusPlus;
    /// <summary>Null: midpoint for DPM-Solver, bh2 for UniPC.</summary>
    [JsonPropertyName("solver_type")] public DpmSolverType? SolverType { get; init; }
    [JsonPropertyName("lower_order_final")] public bool LowerOrderFinal { get; init; } = true;
    [JsonPropertyName("euler_at_final")] public bool EulerAtFinal { get; init; }
    /// <summary>Null: zero for DPM-Solver; for UniPC v0.27.2 (which has no such field) the sigma at t=0.</summary>
    [JsonPropertyName("final_sigmas_type")] public FinalSigmasType? FinalSigmasType { get; init; }
    [JsonPropertyName("lambda_min_clipped")] public double LambdaMinClipped { get; init; } = double.NegativeInfinity;
    [JsonPropertyName("use_lu_lambdas")] public bool UseLuLambdas { get; init; }
    /// <summary>PNDM: skip the Runge-Kutta warm-up and use PLMS only (what Stable Diffusion uses).</summary>
    [JsonPropertyName("skip_prk_steps")] public bool SkipPrkSteps { get; init; }
    /// <summary>UniPC: predict x₀ (data prediction, UniPC's default) rather than ε.</summary>
    [JsonPropertyName("predict_x0")] public bool PredictX0 { get; init; } = true;
    /// <summary>UniPC: step indices at which the corrector is skipped.</summary>
    [JsonPropertyName("disable_corrector")] public int[]? DisableCorrector { get; init; }

    /// <summary>The Stable Diffusion 1.x scheduler configuration (PNDM, scaled_linear 0.00085…0.012, steps_offset 1).</summary>
    public static SchedulerConfig StableDiffusion { get; } = new()
    {
        ClassName = "PNDMScheduler",
        BetaStart = 0.00085,
        BetaEnd = 0.012,
        BetaSchedule = BetaSchedule.ScaledLinear,
        StepsOffset = 1,
        SetAlphaToOne = false,
        SkipPrkSteps = true,
        ClipSample = false,
    };

    static readonly JsonSerializerOptions JsonOptions = new()
    {
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
    };

    /// <summary>
    /// Reads <paramref name="path"/> (a scheduler_config.json, or a model folder / its <c>scheduler/</c> folder).
    /// Throws <see cref="ModelLoadException"/> naming the file and the field when a value is wrong.
    /// </summary>
    public static SchedulerConfig Load(string path)
    {
        string file = path;
        if (Directory.Exists(path))
        {
            var direct = Path.Combine(path, "scheduler_config.json");
            var nested = Path.Combine(path, "scheduler", "scheduler_config.json");
            file = File.Exists(direct) ? direct : nested;
        }
        if (!File.Exists(file))
            throw new ModelLoadException(file, "scheduler config not found; a diffusers model folder has scheduler/scheduler_config.json.");
        return Parse(File.ReadAllText(file), file);
    }

    /// <summary>Parses the JSON text of a scheduler config; <paramref name="source"/> names it in errors.</summary>
    public static SchedulerConfig Parse(string json, string source = "scheduler_config.json")
    {
        SchedulerConfig? cfg;
        try
        {
            cfg = JsonSerializer.Deserialize<SchedulerConfig>(QuotePythonLiterals(json), JsonOptions);
        }
        catch (JsonException ex)
        {
            var field = ex.Path is { Length: > 2 } p ? p.TrimStart('$', '.') : "(document)";
            throw new ModelLoadException(source, $"field '{field}' has a value that cannot be read ({FirstLine(ex.Message)}). {ValidValuesHint(field)}".TrimEnd(), ex);
        }
        if (cfg is null)
            throw new ModelLoadException(source, "the file is empty or 'null'; expected a JSON object of scheduler fields.");
        try
        {
            cfg.Validate();
        }
        catch (ArgumentException ex)
        {
            throw new ModelLoadException(source, ex.Message, ex);
        }
        return cfg;
    }

    /// <summary>Checks ranges; throws <see cref="ArgumentException"/> naming the field and the fix.</summary>
    public void Validate()
    {
        if (NumTrainTimesteps < 2)
            throw new ArgumentException($"num_train_timesteps is {NumTrainTimesteps}; it must be at least 2 (Stable Diffusion uses 1000).");
        if (TrainedBetas is { } tb)
        {
            if (tb.Length != NumTrainTimesteps)
                throw new ArgumentException($"trained_betas has {tb.Length} entries but num_train_timesteps is {NumTrainTimesteps}; give one beta per training timestep.");
            if (tb.Any(b => !(b > 0 && b < 1)))
                throw new ArgumentException("trained_betas must all lie in (0, 1).");
        }
        else
        {
            if (!(BetaStart > 0 && BetaStart < 1)) throw new ArgumentException($"beta_start is {BetaStart}; it must lie in (0, 1) (Stable Diffusion: 0.00085).");
            if (!(BetaEnd > 0 && BetaEnd < 1)) throw new ArgumentException($"beta_end is {BetaEnd}; it must lie in (0, 1) (Stable Diffusion: 0.012).");
        }
        if (StepsOffset < 0 || StepsOffset >= NumTrainTimesteps)
            throw new ArgumentException($"steps_offset is {StepsOffset}; it must be in [0, num_train_timesteps).");
        if (SolverOrder is < 1 or > 3)
            throw new ArgumentException($"solver_order is {SolverOrder}; use 1, 2 or 3.");
        if (!(ClipSampleRange > 0)) throw new ArgumentException($"clip_sample_range is {ClipSampleRange}; it must be positive.");
        if (SigmaMin is { } smin && !(smin > 0)) throw new ArgumentException($"sigma_min is {smin}; it must be positive or null.");
        if (SigmaMax is { } smax && !(smax > 0)) throw new ArgumentException($"sigma_max is {smax}; it must be positive or null.");
    }

    /// <summary>
    /// Python's json module writes bare <c>Infinity</c>, <c>-Infinity</c> and <c>NaN</c> (e.g. diffusers'
    /// <c>lambda_min_clipped</c>); quote them outside strings so System.Text.Json's named-literal handling reads them.
    /// </summary>
    internal static string QuotePythonLiterals(string json)
    {
        var sb = new System.Text.StringBuilder(json.Length + 16);
        bool inString = false;
        for (int i = 0; i < json.Length; i++)
        {
            char c = json[i];
            if (inString)
            {
                sb.Append(c);
                if (c == '\\' && i + 1 < json.Length) { sb.Append(json[++i]); }
                else if (c == '"') inString = false;
                continue;
            }
            if (c == '"') { inString = true; sb.Append(c); continue; }
            string? lit = null;
            foreach (var l in (ReadOnlySpan<string>)["-Infinity", "Infinity", "NaN"])
                if (string.CompareOrdinal(json, i, l, 0, l.Length) == 0) { lit = l; break; }
            if (lit is not null) { sb.Append('"').Append(lit).Append('"'); i += lit.Length - 1; continue; }
            sb.Append(c);
        }
        return sb.ToString();
    }

    static string FirstLine(string s) { var i = s.IndexOf('\n'); return (i < 0 ? s : s[..i]).Trim(); }

    static string ValidValuesHint(string field) => field switch
    {
        "beta_schedule" => "Valid: linear, scaled_linear, squaredcos_cap_v2.",
        "prediction_type" => "Valid: epsilon, v_prediction, sample.",
        "timestep_spacing" => "Valid: leading, trailing, linspace.",
        "interpolation_type" => "Valid: linear, log_linear.",
        "variance_type" => "Valid: fixed_small, fixed_small_log, fixed_large, fixed_large_log, learned, learned_range, null.",
        "algorithm_type" => "Valid: dpmsolver++, sde-dpmsolver++, dpmsolver, sde-dpmsolver.",
        "solver_type" => "Valid: midpoint, heun (DPM-Solver); bh1, bh2 (UniPC).",
        "final_sigmas_type" => "Valid: zero, sigma_min.",
        "timestep_type" => "Valid: discrete, continuous.",
        _ => "Fix the value to the type diffusers writes for this field.",
    };

    /// <summary>The spacing this config asks for, or <paramref name="classDefault"/> when the file has none.</summary>
    public TimestepSpacing SpacingOr(TimestepSpacing classDefault) => TimestepSpacing ?? classDefault;
}
