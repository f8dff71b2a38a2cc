using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using DreamBooth.Loading;
using DreamBooth.Models.Clip;
using DreamBooth.Models.Common;
using DreamBooth.Models.Unet;
using DreamBooth.Models.Vae;
using TorchSharp;
using static TorchSharp.torch;

namespace DreamBooth.TinyWorld.Pretraining;

/// <summary>
/// Writes a trained tiny model as a diffusers Stable Diffusion folder: <c>model_index.json</c>, <c>unet/</c>, <c>vae/</c>,
/// <c>text_encoder/</c> (config.json + fp16 safetensors with the exact diffusers / transformers key names),
/// <c>tokenizer/</c> (CLIP's vocabulary), <c>scheduler/</c> (SD 1.x PNDM config), plus <c>recipe.json</c> and a README.
/// The folder appears atomically: it is written beside the target and renamed into place.
/// </summary>
public static class TinyModelExport
{
    /// <summary>Diffusers version string written into the configs (the layout matches diffusers 0.27).</summary>
    public const string DiffusersVersion = "0.27.2";

    /// <summary>Writes the folder (replacing an existing one only after the new one is complete).</summary>
    public static void Write(string folder, UNet2DConditionModel unet, AutoencoderKL vae, ClipTextModel textEncoder,
        PretrainOptions options, PretrainResult result)
    {
        ArgumentNullException.ThrowIfNull(options);
        folder = Path.GetFullPath(folder);
        var parent = Path.GetDirectoryName(folder) ?? throw new ArgumentException($"'{folder}' has no parent folder", nameof(folder));
        Directory.CreateDirectory(parent);
        var tmp = Path.Combine(parent, $".{Path.GetFileName(folder)}.tmp-{Guid.NewGuid():N}");
        Directory.CreateDirectory(tmp);
        try
        {
            WriteContents(tmp, unet, vae, textEncoder, options, result);
            string? old = null;
            if (Directory.Exists(folder))
            {
                old = Path.Combine(parent, $".{Path.GetFileName(folder)}.old-{Guid.NewGuid():N}");
                Directory.Move(folder, old);
            }
            Directory.Move(tmp, folder);
            if (old is not null) Directory.Delete(old, recursive: true);
        }
        catch
        {
            if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true);
            throw;
        }
    }

    static void WriteContents(string dir, UNet2DConditionModel unet, AutoencoderKL vae, ClipTextModel te, PretrainOptions o, PretrainResult r)
    {
        var meta = new Dictionary<string, string> { ["format"] = "pt" };
        Directory.CreateDirectory(Path.Combine(dir, "unet"));
        ConfigJson.Write(Path.Combine(dir, "unet", "config.json"), unet.Config);
        SaveHalf(Path.Combine(dir, "unet", "diffusion_pytorch_model.safetensors"), unet, meta);

        Directory.CreateDirectory(Path.Combine(dir, "vae"));
        ConfigJson.Write(Path.Combine(dir, "vae", "config.json"), vae.Config with { ScalingFactor = Math.Round(r.ScalingFactor, 5) });
        SaveHalf(Path.Combine(dir, "vae", "diffusion_pytorch_model.safetensors"), vae, meta);

        Directory.CreateDirectory(Path.Combine(dir, "text_encoder"));
        ConfigJson.Write(Path.Combine(dir, "text_encoder", "config.json"), te.Config);
        SaveHalf(Path.Combine(dir, "text_encoder", "model.safetensors"), te, meta);

        var tok = Path.Combine(dir, "tokenizer");
        Directory.CreateDirectory(tok);
        File.Copy(Path.Combine(o.TokenizerFolder!, "vocab.json"), Path.Combine(tok, "vocab.json"));
        File.Copy(Path.Combine(o.TokenizerFolder!, "merges.txt"), Path.Combine(tok, "merges.txt"));
        File.WriteAllText(Path.Combine(tok, "tokenizer_config.json"), TokenizerConfigJson);
        File.WriteAllText(Path.Combine(tok, "special_tokens_map.json"), SpecialTokensMapJson);
        File.WriteAllText(Path.Combine(tok, "LICENSE-NOTE.md"), LicenseNote);

        Directory.CreateDirectory(Path.Combine(dir, "scheduler"));
        File.WriteAllText(Path.Combine(dir, "scheduler", "scheduler_config.json"), SchedulerJson(o));
        File.WriteAllText(Path.Combine(dir, "model_index.json"), ModelIndexJson);
        File.WriteAllText(Path.Combine(dir, "recipe.json"), RecipeJson(o, r) + "\n");
        File.WriteAllText(Path.Combine(dir, "README.md"), Readme(o, r));
    }

    /// <summary>Marker lines around the evaluation section that <see cref="RecordEvaluation"/> rewrites.</summary>
    public const string EvalBegin = "<!-- evaluation:begin -->", EvalEnd = "<!-- evaluation:end -->";

    /// <summary>The model card: what the model is, how it was made (recipe, seed, time, losses) and its licence notes.</summary>
    public static string Readme(PretrainOptions o, PretrainResult r)
    {
        var inv = CultureInfo.InvariantCulture;
        string Mb(long p) => (p * 2 / 1e6).ToString("F1", inv);
        var lines = new List<string>
        {
            "# tiny-sd: the embedded tiny-world base model",
            "",
            "A Stable Diffusion 1.x-style model in the exact diffusers layout (`model_index.json`, `unet/`, `vae/`, `text_encoder/`,",
            "`tokenizer/`, `scheduler/`, fp16 safetensors), built from the same classes as real SD (`UNet2DConditionModel`,",
            "`AutoencoderKL`, `CLIPTextModel`) and trained from scratch on the synthetic TinyWorld domain (coloured shapes on",
            "coloured backgrounds, 64×64). Load it with `StableDiffusionModel.FromPretrained(\"data/models/tiny-sd\")`.",
            "",
            "| component | parameters | fp16 MB | architecture |",
            "|---|---|---|---|",
            $"| unet | {r.Parameters["unet"].ToString("N0", inv)} | {Mb(r.Parameters["unet"])} | block_out_channels [{string.Join(", ", o.UnetChannels)}], layers_per_block 1, cross-attention on all but the last level, {o.UnetHeads} heads, 16×16×4 latents |",
            $"| vae | {r.Parameters["vae"].ToString("N0", inv)} | {Mb(r.Parameters["vae"])} | block_out_channels [{string.Join(", ", o.VaeChannels)}] (4× downscale), 4 latent channels, scaling_factor {r.ScalingFactor.ToString("F5", inv)} |",
            $"| text_encoder | {r.Parameters["text_encoder"].ToString("N0", inv)} | {Mb(r.Parameters["text_encoder"])} | CLIP text model, vocab 49408 (CLIP's), hidden {o.TextHiddenSize}, {o.TextLayers} layers, {o.TextHeads} heads |",
            "",
            "## Recipe",
            "",
            "Reproduce with",
            "",
            "```",
            ReproduceCommand(o),
            "```",
            "",
            $"1. Render {o.TrainSamples} samples of the TinyWorldDataset train split (seed {o.Seed}; {o.PartialCaptionProbability.ToString(inv)} of the captions name only some attributes, e.g. \"a diamond\"). The held-out shape/background combinations never appear.",
            VaeStage(o),
            $"3. Text encoder alone: {o.TextPretrainSteps} AdamW steps of {o.TextPretrainBatchSize} captions, lr {o.TextPretrainLearningRate.ToString(inv)}: a linear head (discarded) names each caption attribute (shape, colour, size, position, background, count, or \"not said\") from every end-of-text/padding position — our stand-in for CLIP's pretraining, so the states the UNet attends to carry the whole caption from its first step.",
            o.UnetSteps == 0 && o.InitFrom is not null
                ? $"4. Text encoder + UNet: those of `{Path.GetFileName(o.InitFrom.TrimEnd('/', '\\'))}`, unchanged (see that model's recipe; the anchored VAE keeps their latents and scaling_factor), so the final UNet loss below is that run's."
                : $"4. Text encoder + UNet jointly{(o.InitFrom is null ? "" : $", starting from those of `{Path.GetFileName(o.InitFrom.TrimEnd('/', '\\'))}`")}: {o.UnetSteps} AdamW steps of {o.UnetBatchSize} latents{(o.UnetPatternFraction > 0 ? $" (the scenes plus {Math.Round(o.TrainSamples * o.UnetPatternFraction).ToString(inv)} `PatternedObjects` {(o.UnetPatternColourWords ? "captioned with their colour words, e.g. \"a yellow and red diamond in the top left on a green background\"" : "captioned without colour, e.g. \"a diamond in the top left on a green background\"")}, so the UNet can draw multi-coloured objects)" : "")}, lr {o.UnetLearningRate.ToString(inv)} / {o.TextLearningRate.ToString(inv)} (warm-up, cosine), {Objective(o)}, caption dropout {o.CaptionDropout.ToString(inv)} (classifier-free guidance), offset noise {o.NoiseOffset.ToString(inv)}, grad-norm clip {o.MaxGradNorm.ToString(inv)}, EMA {o.EmaDecay.ToString(inv)} (exported).",
            "",
            $"Outcome: final VAE loss {LossText(r.FinalVaeLoss)} (L1 + MSE, mean of the last 10% of steps), final text loss {LossText(r.FinalTextLoss)} (attribute cross-entropy, last 10%), final UNet loss {LossText(r.FinalUnetLoss)} ({(o.Prediction == Sampling.PredictionType.VPrediction ? "v" : "ε")}-MSE{(o.UnetObjectWeight > 0 ? ", object-weighted" : "")}, last 10%), UNet steps done {r.UnetStepsDone}/{o.UnetSteps}.",
            $"Time: VAE stage {r.VaeSeconds.ToString("F0", inv)} s, UNet stage {r.UnetSeconds.ToString("F0", inv)} s, total {r.TotalSeconds.ToString("F0", inv)} s with {o.Threads} TorchSharp CPU threads. `recipe.json` holds every option.",
            "",
            EvalBegin,
            "## Evaluation",
            "",
            "Not recorded yet: run `dreambooth tinyworld eval --model data/models/tiny-sd --record`.",
            EvalEnd,
            "",
            "## Licences",
            "",
            "The weights were trained here from random initialisation on synthetic data and are part of this repository.",
            "`tokenizer/vocab.json` and `tokenizer/merges.txt` are CLIP's vocabulary (MIT, © 2021 OpenAI): see `tokenizer/LICENSE-NOTE.md`.",
            "",
        };
        return string.Join("\n", lines);
    }

    /// <summary>Step 2 of the recipe in words: how the VAE was trained, continued or reused.</summary>
    static string VaeStage(PretrainOptions o)
    {
        var inv = CultureInfo.InvariantCulture;
        string Training(int steps, double lr) =>
            $"{steps} AdamW steps of {o.VaeBatchSize} images, lr {lr.ToString(inv)} (warm-up {o.WarmupSteps}, cosine), L1 + MSE reconstruction (object pixels ×{(1 + o.VaeObjectWeight).ToString(inv)}) + {o.VaeKlWeight.ToString(inv)}·KL"
            + (o.VaePatternFraction > 0 ? $"; {o.VaePatternFraction.ToString("P0", inv)} of each batch are uncaptioned multi-coloured objects (`PatternedObjects`: checkers, halves, stripes, rings, dots — never the demo subject's look) so the autoencoder keeps colour detail the captioned scenes never show" : "")
            + (o.VaePasteWeight > 0 && o.VaePatternFraction > 0 ? $"; plus {o.VaePasteWeight.ToString(inv)}× the latent-paste term (each patterned object's latents pasted into the latents of the same object rendered on another background must decode to it there, so an object's code does not depend on its surroundings)" : "")
            + (o.VaeColourSeparation > 0 ? $"; plus {o.VaeColourSeparation.ToString(inv)}× the colour-separation term (the latents of plain palette colours, in units of the scene latents' std, at least {o.VaeColourMargin.ToString(inv)} × ΔE/100 apart)" : "");
        var end = o.ContinuesInitLatents ? "; then frozen, latents cached, scaling_factor kept from the continued model." : "; then frozen, latents cached, scaling_factor = 1/std of the latents.";
        if (o.VaeFrom is null) return $"2. VAE: {Training(o.VaeSteps, o.VaeLearningRate)}{end}";
        var from = $"2. VAE: loaded from `{Path.GetFileName(o.VaeFrom.TrimEnd('/', '\\'))}` (see that model's recipe)";
        if (o.VaeContinueSteps == 0) return from + end;
        var anchor = o.VaeAnchorWeight > 0
            ? $", plus {o.VaeAnchorWeight.ToString(inv)}·MSE between the encoder's latents of the scenes and the loaded VAE's (the anchor that keeps a UNet trained on those latents valid)"
            : "";
        var grown = o.VaeLayersPerBlock != 1 ? $"; grown to {o.VaeLayersPerBlock} ResNet blocks per level (the added blocks start as the identity)" : "";
        var frozen = o.VaeFreezeEncoder ? " (decoder and post_quant_conv only: the encoder, and so every latent, stays the loaded one's)" : "";
        return $"{from}{grown}, then {Training(o.VaeContinueSteps, o.VaeContinueLearningRate)}{frozen}{anchor}{end}";
    }

    /// <summary>Replaces the evaluation section of the model folder's README.md with <paramref name="markdown"/>.</summary>
    public static void RecordEvaluation(string folder, string markdown)
    {
        var path = Path.Combine(folder, "README.md");
        if (!File.Exists(path)) throw new FileNotFoundException($"{path} not found: --record needs the README.md that `tinyworld pretrain` writes", path);
        var text = File.ReadAllText(path);
        int a = text.IndexOf(EvalBegin, StringComparison.Ordinal), b = text.IndexOf(EvalEnd, StringComparison.Ordinal);
        if (a < 0 || b < a) throw new InvalidDataException($"{path} has no {EvalBegin} … {EvalEnd} section to replace");
        var updated = text[..(a + EvalBegin.Length)] + "\n" + markdown.TrimEnd() + "\n" + text[b..];
        AtomicFile.WriteAllText(path, updated);
    }

    /// <summary>Saves a module's state dict with floating tensors converted to float16 (integer buffers unchanged).</summary>
    static void SaveHalf(string path, nn.Module module, IReadOnlyDictionary<string, string> metadata)
    {
        using var scope = torch.NewDisposeScope();
        var dict = new Dictionary<string, Tensor>();
        foreach (var (name, t) in module.state_dict())
            dict[name] = t.is_floating_point() ? t.detach().to(ScalarType.Float16).contiguous() : t.detach();
        Safetensors.Save(path, dict, metadata);
    }

    /// <summary>The recipe and its outcome as JSON (options, sizes, seconds, final losses).</summary>
    public static string RecipeJson(PretrainOptions o, PretrainResult r)
    {
        var options = JsonSerializer.SerializeToNode(o with { TokenizerFolder = null }, ConfigJson.Options)!.AsObject();
        options.Remove("TokenizerFolder");
        var root = new JsonObject
        {
            ["recipe"] = "DreamBooth.TinyWorld.Pretraining.TinyWorldPretraining.Run (dreambooth tinyworld pretrain)",
            ["options"] = options,
            ["parameters"] = JsonSerializer.SerializeToNode(r.Parameters),
            ["scaling_factor"] = Math.Round(r.ScalingFactor, 5),
            // a loss that is not known (a reused VAE without recipe.json, every tail step skipped) is null: JSON has no NaN
            ["final_vae_loss"] = Loss(r.FinalVaeLoss),
            ["final_unet_loss"] = Loss(r.FinalUnetLoss),
            ["final_text_loss"] = Loss(r.FinalTextLoss),
            ["unet_steps_done"] = r.UnetStepsDone,
            ["vae_stage_seconds"] = r.VaeSeconds,
            ["unet_stage_seconds"] = r.UnetSeconds,
            ["total_seconds"] = r.TotalSeconds,
            ["threads"] = o.Threads,
            ["torch_backend"] = "TorchSharp CPU",
            ["created_utc"] = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture),
        };
        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    const string ModelIndexJson = """
{
  "_class_name": "StableDiffusionPipeline",
  "_diffusers_version": "0.27.2",
  "feature_extractor": [
    null,
    null
  ],
  "image_encoder": [
    null,
    null
  ],
  "requires_safety_checker": false,
  "safety_checker": [
    null,
    null
  ],
  "scheduler": [
    "diffusers",
    "PNDMScheduler"
  ],
  "text_encoder": [
    "transformers",
    "CLIPTextModel"
  ],
  "tokenizer": [
    "transformers",
    "CLIPTokenizer"
  ],
  "unet": [
    "diffusers",
    "UNet2DConditionModel"
  ],
  "vae": [
    "diffusers",
    "AutoencoderKL"
  ]
}

""";

    /// <summary>A recorded loss for recipe.json: rounded, or null when it is not known (JSON has no NaN).</summary>
    static JsonNode? Loss(double value) => double.IsFinite(value) ? JsonValue.Create(Math.Round(value, 5)) : null;

    /// <summary>A recorded loss for the model card: 4 decimals, or "n/a" when it is not known.</summary>
    static string LossText(double value) => double.IsFinite(value) ? value.ToString("F4", CultureInfo.InvariantCulture) : "n/a";

    /// <summary>The <c>dreambooth tinyworld pretrain</c> command line that reproduces <paramref name="o"/> (options the CLI exposes).</summary>
    internal static string ReproduceCommand(PretrainOptions o)
    {
        var inv = CultureInfo.InvariantCulture;
        var d = new PretrainOptions();
        var parts = new List<string> { "dreambooth tinyworld pretrain --out data/models/tiny-sd", $"--seed {o.Seed}" };
        if (o.VaeFrom is null) parts.Add($"--vae-steps {o.VaeSteps}");
        else parts.Add($"--vae-from {Path.GetFileName(o.VaeFrom.TrimEnd('/', '\\'))} --vae-continue-steps {o.VaeContinueSteps}");
        if (o.VaeContinueLearningRate != d.VaeContinueLearningRate && o.VaeFrom is not null && o.VaeContinueSteps > 0) parts.Add($"--vae-continue-lr {o.VaeContinueLearningRate.ToString(inv)}");
        if (o.VaePatternFraction != d.VaePatternFraction) parts.Add($"--vae-pattern-fraction {o.VaePatternFraction.ToString(inv)}");
        if (o.UnetPatternFraction != d.UnetPatternFraction && o.UnetSteps > 0) parts.Add($"--unet-pattern-fraction {o.UnetPatternFraction.ToString(inv)}");
        if (o.UnetPatternColourWords && o.UnetSteps > 0) parts.Add("--unet-pattern-colours true");
        if (o.VaeAnchorWeight != d.VaeAnchorWeight) parts.Add($"--vae-anchor-weight {o.VaeAnchorWeight.ToString(inv)}");
        if (o.VaePasteWeight != d.VaePasteWeight) parts.Add($"--vae-paste-weight {o.VaePasteWeight.ToString(inv)}");
        if (o.VaeColourSeparation != d.VaeColourSeparation) parts.Add($"--vae-colour-separation {o.VaeColourSeparation.ToString(inv)}");
        if (o.VaeColourMargin != d.VaeColourMargin) parts.Add($"--vae-colour-margin {o.VaeColourMargin.ToString(inv)}");
        if (o.VaeFreezeEncoder) parts.Add("--vae-freeze-encoder");
        if (o.VaeLayersPerBlock != d.VaeLayersPerBlock) parts.Add($"--vae-layers-per-block {o.VaeLayersPerBlock}");
        if (o.InitFrom is not null) parts.Add($"--init-from {Path.GetFileName(o.InitFrom.TrimEnd('/', '\\'))}");
        parts.Add($"--text-pretrain-steps {o.TextPretrainSteps} --unet-steps {o.UnetSteps}");
        if (o.Prediction != d.Prediction) parts.Add($"--prediction {(o.Prediction == Sampling.PredictionType.VPrediction ? "v" : "epsilon")}");
        if (o.ZeroTerminalSnr != d.ZeroTerminalSnr) parts.Add($"--zero-terminal-snr {(o.ZeroTerminalSnr ? "true" : "false")}");
        if (o.UnetObjectWeight != d.UnetObjectWeight) parts.Add($"--unet-object-weight {o.UnetObjectWeight.ToString(inv)}");
        if (o.HighNoiseWeightCap != d.HighNoiseWeightCap) parts.Add($"--high-noise-cap {o.HighNoiseWeightCap.ToString(inv)}");
        if (o.NoiseOffset != d.NoiseOffset) parts.Add($"--noise-offset {o.NoiseOffset.ToString(inv)}");
        if (o.UnetLearningRate != d.UnetLearningRate) parts.Add($"--unet-lr {o.UnetLearningRate.ToString(inv)}");
        if (o.TextLearningRate != d.TextLearningRate) parts.Add($"--text-lr {o.TextLearningRate.ToString(inv)}");
        if (o.TrainSamples != d.TrainSamples) parts.Add($"--samples {o.TrainSamples}");
        if (o.UnetBatchSize != d.UnetBatchSize) parts.Add($"--unet-batch {o.UnetBatchSize}");
        if (!o.UnetChannels.SequenceEqual(d.UnetChannels)) parts.Add($"--unet-channels {string.Join(',', o.UnetChannels)}");
        return string.Join(' ', parts);
    }

    /// <summary>The UNet objective of a recipe, in words, for the model card.</summary>
    static string Objective(PretrainOptions o)
    {
        var inv = CultureInfo.InvariantCulture;
        var target = o.Prediction == Sampling.PredictionType.VPrediction ? "v-prediction" : "ε-prediction";
        var schedule = o.ZeroTerminalSnr
            ? "SD's scaled-linear schedule (0.00085–0.012, 1000 steps) rescaled to zero terminal SNR (Lin et al. 2023: pure noise at t = T, so the layout and the background must come from the prompt)"
            : "SD's scaled-linear schedule (0.00085–0.012, 1000 steps)";
        var weights = new List<string>();
        if (o.MinSnrGamma > 0)
            weights.Add(o.Prediction == Sampling.PredictionType.VPrediction
                ? $"min-SNR-γ {o.MinSnrGamma.ToString(inv)} as γ / max(SNR, γ)"
                : $"min-SNR-γ {o.MinSnrGamma.ToString(inv)}");
        if (o.HighNoiseWeightCap > 0)
            weights.Add($"high-noise weight min(1 + 1/SNR, {o.HighNoiseWeightCap.ToString(inv)}) (the v-loss factor: makes the model take the background from the prompt, not from the noise)");
        if (o.UnetObjectWeight > 0)
            weights.Add($"object positions of the latent ×{(1 + o.UnetObjectWeight).ToString(inv)} (masked loss)");
        return $"{target} on {schedule}" + (weights.Count > 0 ? ", " + string.Join(", ", weights) : "");
    }

    /// <summary>
    /// The scheduler_config.json of <see cref="TinyModelConfigs.Scheduler"/>: SD 1.x's PNDM config, or for a zero-terminal-SNR
    /// model a DDIM config with <c>rescale_betas_zero_snr</c> and trailing timesteps (diffusers reads both).
    /// </summary>
    internal static string SchedulerJson(PretrainOptions o)
    {
        var c = TinyModelConfigs.Scheduler(o);
        var json = new JsonObject
        {
            ["_class_name"] = c.ClassName,
            ["_diffusers_version"] = DiffusersVersion,
            ["beta_end"] = c.BetaEnd,
            ["beta_schedule"] = "scaled_linear",
            ["beta_start"] = c.BetaStart,
            ["clip_sample"] = false,
            ["num_train_timesteps"] = c.NumTrainTimesteps,
            ["prediction_type"] = c.PredictionType == Sampling.PredictionType.VPrediction ? "v_prediction" : "epsilon",
            ["set_alpha_to_one"] = false,
        };
        if (c.RescaleBetasZeroSnr) json["rescale_betas_zero_snr"] = true;
        else json["skip_prk_steps"] = true;
        json["steps_offset"] = c.StepsOffset;
        json["timestep_spacing"] = c.TimestepSpacing == Sampling.TimestepSpacing.Trailing ? "trailing" : "leading";
        json["trained_betas"] = null;
        return json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";
    }

    const string TokenizerConfigJson = """
{
  "add_prefix_space": false,
  "bos_token": {
    "__type": "AddedToken",
    "content": "<|startoftext|>",
    "lstrip": false,
    "normalized": true,
    "rstrip": false,
    "single_word": false
  },
  "do_lower_case": true,
  "eos_token": {
    "__type": "AddedToken",
    "content": "<|endoftext|>",
    "lstrip": false,
    "normalized": true,
    "rstrip": false,
    "single_word": false
  },
  "errors": "replace",
  "model_max_length": 77,
  "pad_token": "<|endoftext|>",
  "tokenizer_class": "CLIPTokenizer",
  "unk_token": {
    "__type": "AddedToken",
    "content": "<|endoftext|>",
    "lstrip": false,
    "normalized": true,
    "rstrip": false,
    "single_word": false
  }
}

""";

    const string SpecialTokensMapJson = """
{
  "bos_token": {
    "content": "<|startoftext|>",
    "lstrip": false,
    "normalized": true,
    "rstrip": false,
    "single_word": false
  },
  "eos_token": {
    "content": "<|endoftext|>",
    "lstrip": false,
    "normalized": true,
    "rstrip": false,
    "single_word": false
  },
  "pad_token": "<|endoftext|>",
  "unk_token": {
    "content": "<|endoftext|>",
    "lstrip": false,
    "normalized": true,
    "rstrip": false,
    "single_word": false
  }
}

""";

    const string LicenseNote = """
# Licence of the vocabulary

`vocab.json` and `merges.txt` are CLIP's byte-level BPE vocabulary, a re-layout of
`clip/bpe_simple_vocab_16e6.txt.gz` from [openai/CLIP](https://github.com/openai/CLIP) — the same files
Stable Diffusion 1.x/2.x ship in their `tokenizer/` folders — so an invented identifier such as "zwx" splits
exactly as it does in real CLIP. openai/CLIP is released under the MIT License; its notice:

```
MIT License

Copyright (c) 2021 OpenAI

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
```

`tokenizer_config.json` and `special_tokens_map.json` follow the layout of Stable Diffusion 1.x's tokenizer
folder (written by transformers' `CLIPTokenizer.save_pretrained`); they contain no code.

""";
}
