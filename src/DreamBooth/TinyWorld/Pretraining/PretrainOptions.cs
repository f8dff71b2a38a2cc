using DreamBooth.Sampling;

namespace DreamBooth.TinyWorld.Pretraining;

/// <summary>
/// The recipe of the tiny-world base model: data, architecture sizes and optimisation settings for the VAE stage and
/// the joint text-encoder + UNet stage. Every field is recorded in the output's <c>recipe.json</c>; the same options
/// and seed reproduce the same model on the same machine/backend.
/// </summary>
public sealed record PretrainOptions
{
    /// <summary>Seed of the dataset, of the weight initialisation and of every random draw in training.</summary>
    public int Seed { get; init; } = 1234;

    /// <summary>Number of rendered training samples (TinyWorldDataset train split; held-out combinations never appear).</summary>
    public int TrainSamples { get; init; } = 4096;

    /// <summary>Probability that a training caption names only some attributes (teaches short prompts like "a diamond").</summary>
    public double PartialCaptionProbability { get; init; } = 0.3;

    /// <summary>VAE encoder/decoder widths per level (3 levels = 4× downscale: 64×64 images → 16×16 latents).</summary>
    public int[] VaeChannels { get; init; } = [32, 64, 64];

    /// <summary>GroupNorm groups of the VAE (must divide every VAE width).</summary>
    public int VaeNormGroups { get; init; } = 16;

    /// <summary>Reuse the VAE of this model folder instead of training one (the VAE stage is deterministic for a seed).</summary>
    public string? VaeFrom { get; init; }

    /// <summary>
    /// With <see cref="VaeFrom"/>: train the loaded VAE this many more steps (cosine schedule from
    /// <see cref="VaeContinueLearningRate"/>) before freezing it; 0 uses it as it is.
    /// </summary>
    public int VaeContinueSteps { get; init; }

    /// <summary>Peak learning rate of <see cref="VaeContinueSteps"/>.</summary>
    public double VaeContinueLearningRate { get; init; } = 5e-4;

    /// <summary>
    /// Fraction of every VAE batch drawn from <see cref="PatternedObjects"/> (multi-coloured objects, never captioned)
    /// instead of the captioned scenes: a VAE that only ever saw single-colour shapes loses the colour detail of
    /// patterned subjects (the demo subject's purple quarters vanished in its round trip).
    /// </summary>
    public double VaePatternFraction { get; init; } = 0.5;

    /// <summary>
    /// Captioned <see cref="PatternedObjects"/> added to the UNet and text-encoder data, as a fraction of
    /// <see cref="TrainSamples"/> (0 = none). Their captions name shape, position and background but no colour (the world
    /// has no words for patterns): "a diamond in the top left on a green background". A UNet that only ever drew
    /// single-colour shapes has no way to draw a two-tone subject and must learn it from a handful of DreamBooth images
    /// (the subject's purple quarters come out missing or blue); real Stable Diffusion has drawn countless textures
    /// before it meets a subject. None of these objects has the demo subject's look. Measured, and therefore off by
    /// default: the committed model's UNet and text encoder continued 1,200 steps with 0.25 (lr 3e-4 / 1e-4) drew
    /// multi-coloured objects, but DreamBooth on it did worse — mini-DreamBench subject fidelity 0.55 → 0.37 with the
    /// quickstart's settings (probe: 16 recontextualisation prompts × 2 seeds), leakage 28 → 25 %.
    /// </summary>
    public double UnetPatternFraction { get; init; }

    /// <summary>
    /// With <see cref="UnetPatternFraction"/>: caption the patterned objects with their colour words ("a yellow and red
    /// diamond in the top left on a green background", <see cref="PatternedObjects.Caption(PatternedObject, bool)"/>)
    /// instead of colourlessly, so the UNet learns that a multi-coloured object's colours come from the text and not
    /// from the background (`--unet-pattern-colours`).
    /// </summary>
    public bool UnetPatternColourWords { get; init; }

    /// <summary>
    /// With <see cref="VaeContinueSteps"/>: weight of a penalty that keeps the continued encoder's latents of the
    /// captioned scenes where the loaded VAE put them (mean squared difference), so a UNet trained on the loaded VAE's
    /// latents stays valid (<see cref="InitFrom"/>); the decoder and the unused latent directions stay free to learn.
    /// 0 = no penalty.
    /// </summary>
    public double VaeAnchorWeight { get; init; }

    /// <summary>
    /// Weight of the <b>latent-paste</b> term (0 = off; needs <see cref="VaePatternFraction"/> &gt; 0): every patterned
    /// object is also rendered on a second background, and the object's latents cut from one rendering and pasted into
    /// the other's background latents (mixed by the latent-resolution object coverage) must decode to the object on
    /// that other background. A generator that learnt an object on a few backgrounds draws it on a new one by putting
    /// the same latent code into new surroundings; measured on v5, the demo subject's latents pasted from a green
    /// background into a white one decoded as a yellow blob (subject fidelity 0), which is exactly how DreamBooth drew
    /// it there. Real Stable Diffusion's autoencoder is local enough for this; the term teaches the tiny one the same
    /// (`--vae-paste-weight`). Measured, and off by default: v5 continued 600 steps with weight 1 (lr 3e-4, anchored,
    /// 1,030 s) decodes the pasted subject at fidelity 0.68–1.00 on red, orange, white and black (v5: 0–1, white 0).
    /// DreamBooth on it, averaged over training seeds 1234 / 1 / 2 (probe): 0.574 against v5's 0.533 with the
    /// quickstart's 300 steps, <b>0.731 against 0.646</b> with 800 steps at lr 1e-4 — the new decoder is what helps
    /// (its encoder with v5's decoder: 0.599) — but the same decoder draws small scene shapes worse: held-out shape accuracy
    /// 75 % → 67 % (400 more steps with a quarter of patterned objects: 68 %), below the base model's 70 % goal, so
    /// v5 stays the committed model (data/README.md).
    /// </summary>
    public double VaePasteWeight { get; init; }

    /// <summary>
    /// Weight of the colour-separation term (`--vae-colour-separation`, default 0 = off): every VAE step also encodes a
    /// plain image of each palette colour and penalises, for every pair, (margin − latent distance)² where their
    /// distance (central mean latents, divided by the standard deviation of the batch's scene latents, i.e. about the
    /// UNet's units) falls short of <see cref="VaeColourMargin"/> × ΔE / 100 (CIELAB ΔE76 of the pair). Why: v5 packs
    /// the subject's purple 1.48 from white and 1.34 from blue (ΔE 99 and 34), its yellow 1.27 from orange, and
    /// DreamBooth paints a subject colour that is a short latent step from the background as background
    /// (<see cref="DreamBench.LatentContrast"/>, data/README.md). It moves the latents, so a UNet trained on the old
    /// ones is invalid: refused with <see cref="VaeFreezeEncoder"/> (no encoder gradient) and not meant for
    /// <see cref="InitFrom"/>.
    /// </summary>
    public double VaeColourSeparation { get; init; }

    /// <summary>Margin of <see cref="VaeColourSeparation"/> in latent units per 100 ΔE (`--vae-colour-margin`, default 2.5: purple–white ≥ 2.5, red's contrast to the subject on v5).</summary>
    public double VaeColourMargin { get; init; } = 2.5;

    /// <summary>
    /// ResNet blocks per VAE level (diffusers' <c>layers_per_block</c>; the decoder has one more per level). A loaded VAE
    /// (<see cref="VaeFrom"/>) with fewer is <b>grown</b>: each added block starts as the identity (its second
    /// convolution zero), so the grown VAE computes exactly what the loaded one did until <see cref="VaeContinueSteps"/>
    /// train it (`--vae-layers-per-block`). Measured: v5 grown to 2 (1.29 M parameters) and trained with the paste term
    /// kept no more small shapes than the 0.95 M one (data/README.md), so the committed model keeps 1.
    /// </summary>
    public int VaeLayersPerBlock { get; init; } = 1;

    /// <summary>
    /// With <see cref="VaeContinueSteps"/>: train only the decoder (and post_quant_conv); the loaded encoder stays exactly
    /// as it is, so every latent a UNet was trained on is unchanged (`--vae-freeze-encoder`). The latent-paste term then
    /// teaches the decoder to draw the loaded encoder's object codes on other backgrounds. Measured on v5: it did not
    /// raise DreamBooth's subject fidelity and cost small shapes in the round trip (data/README.md).
    /// </summary>
    public bool VaeFreezeEncoder { get; init; }

    /// <summary>VAE optimiser steps.</summary>
    public int VaeSteps { get; init; } = 1200;

    /// <summary>VAE images per step.</summary>
    public int VaeBatchSize { get; init; } = 16;

    /// <summary>VAE peak learning rate (AdamW, warm-up then cosine decay).</summary>
    public double VaeLearningRate { get; init; } = 1.5e-3;

    /// <summary>Weight of the KL term of the VAE loss (tiny, as in SD's KL-f8 autoencoder).</summary>
    public double VaeKlWeight { get; init; } = 1e-6;

    /// <summary>Extra weight of object pixels (those differing from the background) in the VAE loss.</summary>
    public double VaeObjectWeight { get; init; } = 9.0;

    /// <summary>Text encoder width (= UNet cross_attention_dim).</summary>
    public int TextHiddenSize { get; init; } = 64;

    /// <summary>Text encoder transformer layers.</summary>
    public int TextLayers { get; init; } = 2;

    /// <summary>Text encoder attention heads (must divide <see cref="TextHiddenSize"/>).</summary>
    public int TextHeads { get; init; } = 4;

    /// <summary>Text encoder MLP width.</summary>
    public int TextIntermediateSize { get; init; } = 256;

    /// <summary>
    /// Text-only steps that pretrain the text encoder before the UNet sees it (0 = none). Stable Diffusion's text encoder
    /// is CLIP, trained before the UNet; ours is trained here to name a caption's attributes (shape, colour, size,
    /// position, background, count, or "not said") from each end-of-text/padding position, so the states the UNet's
    /// cross-attention reads carry the whole caption from the first UNet step. Without it the UNet learnt to ignore the
    /// text: only the attribute word's own position differed between captions, diluted 77-fold by initially uniform
    /// attention.
    /// </summary>
    public int TextPretrainSteps { get; init; } = 500;

    /// <summary>
    /// Start the UNet and the text encoder from this model folder (an earlier run of the recipe with the same sizes)
    /// instead of from random weights; usually with <see cref="TextPretrainSteps"/> = 0. Two uses:
    /// <list type="bullet">
    /// <item><b>Continue</b> it: <see cref="VaeFrom"/> is the same folder (the latents it was trained on, unchanged,
    /// anchored or with a frozen encoder), and its scaling_factor is kept.</item>
    /// <item><b>Warm-start</b> a UNet for another VAE (<see cref="VaeFrom"/> another folder, e.g. one trained with
    /// <see cref="VaeColourSeparation"/>): the scaling_factor is 1/std of the new latents, so they reach the UNet in the
    /// units it was trained in, and <see cref="UnetSteps"/> ≥ 1 adapt it (1,000–1,500 steps measured; the base
    /// model got better, DreamBooth on it worse: data/README.md).</item>
    /// </list>
    /// </summary>
    public string? InitFrom { get; init; }

    /// <summary>True when <see cref="InitFrom"/>'s UNet keeps its own latents (<see cref="VaeFrom"/> is the same folder) and so its scaling_factor.</summary>
    internal bool ContinuesInitLatents => InitFrom is not null && VaeFrom is not null
        && string.Equals(Path.GetFullPath(InitFrom).TrimEnd('/', '\\'), Path.GetFullPath(VaeFrom).TrimEnd('/', '\\'), StringComparison.Ordinal);

    /// <summary>Captions per text-pretraining step.</summary>
    public int TextPretrainBatchSize { get; init; } = 64;

    /// <summary>Peak learning rate of the text-pretraining stage.</summary>
    public double TextPretrainLearningRate { get; init; } = 1e-3;

    /// <summary>UNet widths per level; the last level has no attention (SD's layout: cross-attention blocks first).</summary>
    public int[] UnetChannels { get; init; } = [64, 128, 128];

    /// <summary>UNet attention heads per block (diffusers' legacy <c>attention_head_dim</c>, a head count).</summary>
    public int UnetHeads { get; init; } = 4;

    /// <summary>GroupNorm groups of the UNet.</summary>
    public int UnetNormGroups { get; init; } = 32;

    /// <summary>Joint text-encoder + UNet optimiser steps.</summary>
    public int UnetSteps { get; init; } = 4000;

    /// <summary>Latents per UNet step.</summary>
    public int UnetBatchSize { get; init; } = 32;

    /// <summary>UNet peak learning rate (AdamW, warm-up then cosine decay).</summary>
    public double UnetLearningRate { get; init; } = 8e-4;

    /// <summary>Text-encoder peak learning rate.</summary>
    public double TextLearningRate { get; init; } = 2e-4;

    /// <summary>Warm-up steps of both stages' schedules.</summary>
    public int WarmupSteps { get; init; } = 50;

    /// <summary>Probability of training on the empty prompt (classifier-free guidance, Ho &amp; Salimans 2022).</summary>
    public double CaptionDropout { get; init; } = 0.1;

    /// <summary>Offset noise (per-channel constant noise added to ε): lets the model move an image's mean colour.</summary>
    public double NoiseOffset { get; init; } = 0.1;

    /// <summary>
    /// What the UNet predicts. <see cref="PredictionType.VPrediction"/> (Salimans &amp; Ho 2022, SD 2.x's 768 models) is
    /// needed with <see cref="ZeroTerminalSnr"/>, where ε carries no information at t = T.
    /// </summary>
    public PredictionType Prediction { get; init; } = PredictionType.VPrediction;

    /// <summary>
    /// Rescale SD's β schedule to zero terminal SNR (Lin et al. 2023, "Common Diffusion Noise Schedules and Sample Steps
    /// are Flawed"): at t = T the model sees pure noise, as in sampling, so it must take the layout (where the object
    /// goes) and the background from the prompt. With SD's schedule √ᾱ_T ≈ 0.068 of the image is left at t = T and a
    /// small model learns to read the object's position from it; at sampling time it then follows the position of a
    /// phantom object in the initial noise, whatever the prompt says. The exported scheduler config is then DDIM with
    /// <c>rescale_betas_zero_snr</c> and trailing timesteps, as the paper recommends. Needs v-prediction.
    /// </summary>
    public bool ZeroTerminalSnr { get; init; } = true;

    /// <summary>
    /// Extra weight of the latent positions covered by an object (plus one latent pixel around it) in the diffusion loss,
    /// like kohya's masked loss: objects cover a few % of the latent, so an unweighted loss is mostly the background.
    /// 0 weights every position alike.
    /// </summary>
    public double UnetObjectWeight { get; init; } = 4.0;

    /// <summary>Min-SNR-γ loss weighting (Hang et al. 2023); 0 turns it off.</summary>
    public double MinSnrGamma { get; init; } = 5.0;

    /// <summary>
    /// Up-weights the ε-loss of noisy timesteps by min(1 + 1/SNR, cap) — the factor that turns an ε-MSE into a v-MSE
    /// (Salimans &amp; Ho 2022) — so the model is pushed to predict the clean image where the noise hides it. Without it a
    /// small ε-model learns to read the background colour from the noise (SD's schedule keeps SNR ≈ 0.005 at t = T, and a
    /// flat background averaged over the latent is visible through that) instead of from the prompt, which makes sampling
    /// from pure noise ignore the text. 0 turns it off (the default: the v-prediction recipe on a zero-terminal-SNR
    /// schedule replaced it; it applies to ε-prediction only).
    /// </summary>
    public double HighNoiseWeightCap { get; init; }

    /// <summary>Exponential moving average decay of the UNet/text-encoder weights that are exported; 0 exports the raw weights.</summary>
    public double EmaDecay { get; init; } = 0.995;

    /// <summary>Gradient clipping by global norm.</summary>
    public double MaxGradNorm { get; init; } = 1.0;

    /// <summary>Write the model folder every N UNet steps (EMA weights) so a usable model exists before the end; 0 = only at the end.</summary>
    public int SnapshotEvery { get; init; } = 200;

    /// <summary>Intra-op threads for TorchSharp (0 keeps the current setting).</summary>
    public int Threads { get; init; } = 2;

    /// <summary>Folder with the CLIP vocab.json + merges.txt (and optionally tokenizer_config.json, special_tokens_map.json) copied into tokenizer/.</summary>
    public string? TokenizerFolder { get; init; }

    /// <summary>A recipe for smoke runs (small data, few steps, full-size networks: 491 s on 2 cores); the model it makes is not good.</summary>
    public static PretrainOptions Quick { get; } = new()
    {
        TrainSamples = 256,
        VaeSteps = 60,
        TextPretrainSteps = 100,
        UnetSteps = 100,
        WarmupSteps = 10,
    };

    /// <summary>Seconds-long settings with very small widths, for tests.</summary>
    public static PretrainOptions Tiny { get; } = new()
    {
        TrainSamples = 16,
        VaeChannels = [8, 16, 16],
        VaeNormGroups = 8,
        VaeSteps = 2,
        VaeBatchSize = 4,
        TextHiddenSize = 16,
        TextLayers = 1,
        TextHeads = 2,
        TextIntermediateSize = 32,
        TextPretrainSteps = 2,
        TextPretrainBatchSize = 4,
        UnetChannels = [16, 32, 32],
        UnetHeads = 2,
        UnetNormGroups = 8,
        UnetSteps = 3,
        UnetBatchSize = 4,
        WarmupSteps = 1,
    };

    /// <summary>Throws with the offending option's name and the fix.</summary>
    public void Validate()
    {
        static void Check(bool ok, string name, object value, string fix)
        {
            if (!ok) throw new ArgumentOutOfRangeException(name, value, $"PretrainOptions.{name}: {fix}");
        }
        Check(TrainSamples >= 1, nameof(TrainSamples), TrainSamples, "must be ≥ 1 (a few thousand are plenty).");
        Check(PartialCaptionProbability is >= 0 and <= 1, nameof(PartialCaptionProbability), PartialCaptionProbability, "must lie in [0, 1].");
        Check(VaeChannels is { Length: 3 } && VaeChannels.All(c => c > 0), nameof(VaeChannels), VaeChannels?.Length ?? 0, "needs exactly 3 positive widths (64×64 images → 16×16 latents).");
        Check(VaeNormGroups > 0 && VaeChannels!.All(c => c % VaeNormGroups == 0), nameof(VaeNormGroups), VaeNormGroups, "must divide every VaeChannels entry.");
        Check(VaeSteps >= 0, nameof(VaeSteps), VaeSteps, "must be ≥ 0.");
        Check(VaeBatchSize >= 1, nameof(VaeBatchSize), VaeBatchSize, "must be ≥ 1.");
        Check(VaeLearningRate > 0 && VaeLearningRate < 1, nameof(VaeLearningRate), VaeLearningRate, "must lie in (0, 1); 1e-3 works.");
        Check(VaeKlWeight >= 0 && VaeKlWeight < 1, nameof(VaeKlWeight), VaeKlWeight, "must lie in [0, 1); SD uses ~1e-6.");
        Check(InitFrom is null || Directory.Exists(Path.Combine(InitFrom, "unet")), nameof(InitFrom), InitFrom ?? "", "(--init-from) must be a model folder written by this recipe (with unet/ and text_encoder/).");
        Check(InitFrom is null || VaeFrom != null, nameof(InitFrom), InitFrom ?? "", "(--init-from) starts the UNet from a model whose latents come from a trained VAE: set VaeFrom (--vae-from) to the same model to continue it, or to another model's VAE to warm-start a UNet for it.");
        Check(!ContinuesInitLatents || VaeContinueSteps == 0 || VaeAnchorWeight > 0 || VaeFreezeEncoder, nameof(InitFrom), InitFrom ?? "", "continues a UNet trained on fixed latents: keep VaeContinueSteps at 0, anchor the latents with VaeAnchorWeight (--vae-anchor-weight 1) or keep the encoder with VaeFreezeEncoder (--vae-freeze-encoder).");
        Check(InitFrom is null || VaeFrom is null || ContinuesInitLatents || UnetSteps >= 1, nameof(InitFrom), InitFrom ?? "", "with --vae-from another model, the UNet of --init-from meets latents it was not trained on: set UnetSteps (--unet-steps) ≥ 1 to adapt it (1,000–1,500 steps were measured, data/README.md).");
        Check(VaePatternFraction is >= 0 and <= 1, nameof(VaePatternFraction), VaePatternFraction, "(--vae-pattern-fraction) must lie in [0, 1].");
        Check(UnetPatternFraction is >= 0 and <= 1, nameof(UnetPatternFraction), UnetPatternFraction, "(--unet-pattern-fraction) must lie in [0, 1].");
        Check(!UnetPatternColourWords || UnetPatternFraction > 0, nameof(UnetPatternColourWords), UnetPatternColourWords, "(--unet-pattern-colours) captions the patterned objects of --unet-pattern-fraction, which is 0: set a fraction > 0 or drop the switch.");
        Check(VaePasteWeight >= 0, nameof(VaePasteWeight), VaePasteWeight, "(--vae-paste-weight) must be ≥ 0.");
        Check(VaePasteWeight == 0 || VaePatternFraction > 0, nameof(VaePasteWeight), VaePasteWeight, "pastes patterned objects between backgrounds: set VaePatternFraction (--vae-pattern-fraction) above 0 too.");
        Check(VaeAnchorWeight >= 0, nameof(VaeAnchorWeight), VaeAnchorWeight, "(--vae-anchor-weight) must be ≥ 0.");
        Check(VaeAnchorWeight == 0 || VaeContinueSteps > 0, nameof(VaeAnchorWeight), VaeAnchorWeight, "anchors a continued VAE to the loaded one: set VaeContinueSteps (--vae-continue-steps) and VaeFrom (--vae-from) too.");
        Check(VaeColourSeparation >= 0, nameof(VaeColourSeparation), VaeColourSeparation, "(--vae-colour-separation) must be ≥ 0.");
        Check(VaeColourMargin > 0, nameof(VaeColourMargin), VaeColourMargin, "(--vae-colour-margin) must be > 0 (latent units per 100 ΔE; 2.5 works).");
        Check(VaeColourSeparation == 0 || !VaeFreezeEncoder, nameof(VaeColourSeparation), VaeColourSeparation, "(--vae-colour-separation) moves the encoder's latents, which --vae-freeze-encoder keeps fixed: drop one of them.");
        Check(VaeColourSeparation == 0 || InitFrom is null, nameof(VaeColourSeparation), VaeColourSeparation, "(--vae-colour-separation) moves the latents a UNet from --init-from was trained on: pretrain the UNet again (drop --init-from).");
        Check(VaeLayersPerBlock is >= 1 and <= 4, nameof(VaeLayersPerBlock), VaeLayersPerBlock, "(--vae-layers-per-block) must lie in 1..4.");
        Check(!VaeFreezeEncoder || VaeContinueSteps > 0, nameof(VaeFreezeEncoder), VaeFreezeEncoder, "(--vae-freeze-encoder) fine-tunes the decoder of a loaded VAE: set VaeFrom (--vae-from) and VaeContinueSteps (--vae-continue-steps) too.");
        Check(VaeContinueSteps >= 0, nameof(VaeContinueSteps), VaeContinueSteps, "must be ≥ 0 (0 reuses VaeFrom as it is).");
        Check(VaeContinueSteps == 0 || VaeFrom != null, nameof(VaeContinueSteps), VaeContinueSteps, "continues training a loaded VAE: set VaeFrom (--vae-from) too, or use VaeSteps to train one from scratch.");
        Check(VaeContinueLearningRate > 0 && VaeContinueLearningRate < 1, nameof(VaeContinueLearningRate), VaeContinueLearningRate, "must lie in (0, 1).");
        Check(Prediction is PredictionType.Epsilon or PredictionType.VPrediction, nameof(Prediction), Prediction, "must be Epsilon or VPrediction.");
        Check(!ZeroTerminalSnr || Prediction == PredictionType.VPrediction, nameof(ZeroTerminalSnr), ZeroTerminalSnr, "needs Prediction = VPrediction (--prediction v): an ε target carries no information at zero SNR.");
        Check(HighNoiseWeightCap == 0 || Prediction == PredictionType.Epsilon, nameof(HighNoiseWeightCap), HighNoiseWeightCap, "applies to ε-prediction only (the v-loss already is the ε-loss × (1 + 1/SNR)); set it to 0 (--high-noise-cap 0) with VPrediction.");
        Check(UnetObjectWeight >= 0, nameof(UnetObjectWeight), UnetObjectWeight, "must be ≥ 0 (0 weights every latent position alike).");
        Check(VaeObjectWeight >= 0, nameof(VaeObjectWeight), VaeObjectWeight, "must be ≥ 0 (0 weights all pixels alike).");
        Check(TextHiddenSize > 0 && TextHeads > 0 && TextHiddenSize % TextHeads == 0, nameof(TextHeads), TextHeads, $"must divide TextHiddenSize ({TextHiddenSize}).");
        Check(TextLayers >= 1, nameof(TextLayers), TextLayers, "must be ≥ 1.");
        Check(TextIntermediateSize >= 1, nameof(TextIntermediateSize), TextIntermediateSize, "must be ≥ 1.");
        Check(TextPretrainSteps >= 0, nameof(TextPretrainSteps), TextPretrainSteps, "must be ≥ 0 (0 skips text pretraining).");
        Check(TextPretrainBatchSize >= 1, nameof(TextPretrainBatchSize), TextPretrainBatchSize, "must be ≥ 1.");
        Check(TextPretrainLearningRate > 0 && TextPretrainLearningRate < 1, nameof(TextPretrainLearningRate), TextPretrainLearningRate, "must lie in (0, 1).");
        Check(UnetChannels is { Length: >= 2 } && UnetChannels.All(c => c > 0), nameof(UnetChannels), UnetChannels?.Length ?? 0, "needs at least 2 positive widths.");
        Check(UnetHeads > 0 && UnetChannels!.All(c => c % UnetHeads == 0), nameof(UnetHeads), UnetHeads, "must divide every UnetChannels entry.");
        Check(UnetNormGroups > 0 && UnetChannels!.All(c => c % UnetNormGroups == 0), nameof(UnetNormGroups), UnetNormGroups,
            $"(--unet-norm-groups) must divide every UnetChannels (--unet-channels) width, {string.Join(",", UnetChannels!)}: pick a common divisor (16 for 64,144,144) or widths that are multiples of it.");
        Check(UnetSteps >= 1 || (UnetSteps == 0 && InitFrom != null), nameof(UnetSteps), UnetSteps, "must be ≥ 1 (0 only with InitFrom / --init-from, to keep that model's UNet as it is).");
        Check(UnetBatchSize >= 1, nameof(UnetBatchSize), UnetBatchSize, "must be ≥ 1.");
        Check(UnetLearningRate > 0 && UnetLearningRate < 1, nameof(UnetLearningRate), UnetLearningRate, "must lie in (0, 1).");
        Check(TextLearningRate > 0 && TextLearningRate < 1, nameof(TextLearningRate), TextLearningRate, "must lie in (0, 1).");
        Check(WarmupSteps >= 0, nameof(WarmupSteps), WarmupSteps, "must be ≥ 0.");
        Check(CaptionDropout is >= 0 and < 1, nameof(CaptionDropout), CaptionDropout, "must lie in [0, 1); 0.1 enables classifier-free guidance.");
        Check(NoiseOffset is >= 0 and <= 1, nameof(NoiseOffset), NoiseOffset, "must lie in [0, 1].");
        Check(MinSnrGamma >= 0, nameof(MinSnrGamma), MinSnrGamma, "must be ≥ 0 (0 = off, 5 is the paper's value).");
        Check(HighNoiseWeightCap == 0 || HighNoiseWeightCap >= 1, nameof(HighNoiseWeightCap), HighNoiseWeightCap, "must be 0 (off) or ≥ 1 (the largest weight of a noisy timestep).");
        Check(EmaDecay is >= 0 and < 1, nameof(EmaDecay), EmaDecay, "must lie in [0, 1).");
        Check(MaxGradNorm > 0, nameof(MaxGradNorm), MaxGradNorm, "must be > 0.");
        Check(SnapshotEvery >= 0, nameof(SnapshotEvery), SnapshotEvery, "must be ≥ 0 (0 = no intermediate snapshots).");
        Check(Threads >= 0, nameof(Threads), Threads, "must be ≥ 0 (0 keeps TorchSharp's setting).");
        if (string.IsNullOrWhiteSpace(TokenizerFolder))
            throw new ArgumentException("PretrainOptions.TokenizerFolder is not set: give a folder holding CLIP's vocab.json and merges.txt (e.g. data/models/tiny-sd/tokenizer).", nameof(TokenizerFolder));
        foreach (var f in new[] { "vocab.json", "merges.txt" })
            if (!File.Exists(Path.Combine(TokenizerFolder, f)))
                throw new ArgumentException($"PretrainOptions.TokenizerFolder '{TokenizerFolder}' has no {f}: give a folder holding CLIP's vocab.json and merges.txt (e.g. data/models/tiny-sd/tokenizer).", nameof(TokenizerFolder));
    }
}

/// <summary>Which stage a progress report belongs to.</summary>
public enum PretrainStage
{
    /// <summary>Rendering the training images.</summary>
    Render,
    /// <summary>Training the autoencoder.</summary>
    Vae,
    /// <summary>Encoding the training set to cached latents.</summary>
    Latents,
    /// <summary>Pretraining the text encoder on the captions alone.</summary>
    Text,
    /// <summary>Training text encoder and UNet jointly.</summary>
    Unet,
    /// <summary>Writing the diffusers folder.</summary>
    Export,
}

/// <summary>One progress report: stage, step within it, its total, the running loss (NaN when none) and elapsed time.</summary>
public sealed record PretrainProgress(PretrainStage Stage, int Step, int Total, double Loss, TimeSpan Elapsed);
