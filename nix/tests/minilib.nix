# A small stand-in for nixpkgs' lib, builtins only, written for this
# project (no nixpkgs code), so that nix/tests/eval.nix can evaluate
# nix/module.nix where no nixpkgs is at hand (nix/check.sh). With
# NIXPKGS=/path/to/nixpkgs, check.sh runs the same test on the real lib.
#
# It has what the module and the test use, with the semantics of
# nixpkgs' module system that matter for them:
#   - mkOption, mkEnableOption, mkOptionType, literalExpression, types
#     (bool, int, float, str, lines, path, package, attrs, anything,
#     unspecified, enum, listOf, attrsOf, nullOr, either, oneOf, addCheck,
#     submodule), each with a check and a merge;
#   - mkIf, mkMerge, mkOverride, mkDefault, mkForce: conditions and
#     merges pushed down through attribute sets, the definitions of the
#     highest priority (lowest number) kept;
#   - evalModules { modules; specialArgs; }: modules as functions, sets or
#     paths, with imports, options and config (or the shorthand without
#     them); declarations merged into one tree; a definition of an option
#     nobody declared is an error ("The option `a.b' does not exist.");
#     list options concatenate, attrsOf merges by name, submodules
#     evaluate their definitions as modules, simple types must agree;
#     each value checked against its type; `apply`; `readOnly`.
# Not here: freeform modules, option renames, mkBefore/mkAfter ordering,
# _module.args from config, mkAliasOptionModule, descriptions that
# recurse into types.
let
  inherit (builtins)
    all any attrNames concatLists concatStringsSep elem filter foldl'
    genericClosure hasAttr head isAttrs isBool isFloat isFunction isInt
    isList isPath isString length listToAttrs map mapAttrs tail toJSON
    typeOf;

  # --- small helpers, as nixpkgs names them -------------------------------

  optional = cond: x: if cond then [ x ] else [ ];
  optionals = cond: xs: if cond then xs else [ ];
  optionalAttrs = cond: as: if cond then as else { };
  optionalString = cond: s: if cond then s else "";
  genAttrs = names: f: listToAttrs (map (n: { name = n; value = f n; }) names);
  concatMap = f: xs: concatLists (map f xs);
  last = xs: builtins.elemAt xs (length xs - 1);
  isDerivation = x: isAttrs x && (x.type or null) == "derivation";
  isOption = x: isAttrs x && (x._type or null) == "option";
  showOption = loc: concatStringsSep "." loc;

  # Values of `a` with those of `b` merged in, recursively where both are
  # attribute sets (not derivations); `b` wins.
  recursiveUpdate = a: b:
    a // mapAttrs
      (n: v:
        if hasAttr n a && isAttrs a.${n} && isAttrs v && !(isDerivation v) && !(isDerivation a.${n})
        then recursiveUpdate a.${n} v
        else v)
      b;

  # Every attribute name of a list of sets, each once, with the values of
  # those that have it.
  zipAttrs = sets:
    let names = attrNames (foldl' (acc: s: acc // s) { } sets);
    in genAttrs names (n: concatMap (s: optional (hasAttr n s) s.${n}) sets);

  # --- properties ---------------------------------------------------------

  mkIf = condition: content: { _type = "if"; inherit condition content; };
  mkMerge = contents: { _type = "merge"; inherit contents; };
  mkOverride = priority: content: { _type = "override"; inherit priority content; };
  mkOptionDefault = mkOverride 1500;
  mkDefault = mkOverride 1000;
  mkForce = mkOverride 50;
  defaultPriority = 100;

  # A definition at an attribute-set node as a list of plain sets, each
  # attribute carrying the conditions and priorities around it (as
  # nixpkgs' pushDownProperties).
  pushDown = cfg:
    if (cfg._type or null) == "merge" then concatMap pushDown cfg.contents
    else if (cfg._type or null) == "if" then
      map (mapAttrs (_: v: mkIf cfg.condition v)) (pushDown cfg.content)
    else if (cfg._type or null) == "override" then
      map (mapAttrs (_: v: mkOverride cfg.priority v)) (pushDown cfg.content)
    else if isAttrs cfg then [ cfg ]
    else throw "minilib: a definition here must be an attribute set, not ${typeOf cfg}";

  # A definition at an option as its values: merges flattened, false
  # conditions dropped (overrides kept for filterOverrides).
  discharge = v:
    if (v._type or null) == "merge" then concatMap discharge v.contents
    else if (v._type or null) == "if" then
      (if v.condition == true then discharge v.content
       else if v.condition == false then [ ]
       else throw "minilib: mkIf condition is not a Boolean: ${typeOf v.condition}")
    else [ v ];

  # Keep only the definitions of the best (lowest) priority, unwrapped.
  filterOverrides = defs:
    let
      prio = d: if (d.value._type or null) == "override" then d.value.priority else defaultPriority;
      best = foldl' (m: d: if prio d < m then prio d else m) 9999 defs;
      strip = d:
        if (d.value._type or null) == "override"
        then map (v: d // { value = v; }) (discharge d.value.content)
        else [ d ];
    in
    concatMap strip (filter (d: prio d == best) defs);

  # --- options and types --------------------------------------------------

  mkOption = attrs: attrs // { _type = "option"; };
  mkEnableOption = name: mkOption {
    type = types.bool;
    default = false;
    example = true;
    description = "Whether to enable ${name}.";
  };
  literalExpression = text: { _type = "literalExpression"; inherit text; };

  mkOptionType =
    { name
    , description ? name
    , check ? (_: true)
    , merge ? mergeEqualOption
    , nestedTypes ? { }
    , ...
    }@t: t // { _type = "option-type"; inherit name description check merge nestedTypes; };

  # A definition for an error message (toJSON could fail on a function,
  # and that failure tryEval cannot catch).
  showValue = v:
    if isString v || isInt v || isBool v || isFloat v || v == null then toJSON v
    else if isList v then "[ ${concatStringsSep " " (map showValue v)} ]"
    else if isDerivation v then "<derivation ${v.name or "?"}>"
    else if isAttrs v then "{ ${concatStringsSep " " (map (n: "${n} = ...;") (attrNames v))} }"
    else "<${typeOf v}>";
  defsText = defs: concatStringsSep "\n" (map (d: "- In `${d.file}': ${showValue d.value}") defs);

  mergeEqualOption = loc: defs:
    let first = head defs; in
    if defs == [ ] then throw "minilib: no definition for `${showOption loc}'"
    else if all (d: d.value == first.value) defs then first.value
    else throw "The option `${showOption loc}' has conflicting definition values:\n${defsText defs}";

  mergeOneOption = loc: defs:
    if length defs == 1 then (head defs).value else mergeEqualOption loc defs;

  # A definition list through a type: each value checked, then merged.
  checkedMerge = loc: type: defs:
    let bad = filter (d: !(type.check d.value)) defs; in
    if bad != [ ] then
      throw "A definition for option `${showOption loc}' is not of type `${type.description}'. Definition values:\n${defsText bad}"
    else type.merge loc defs;

  # The final value of one option: its definitions with properties
  # resolved, else its default.
  mergeDefinitions = loc: type: defs:
    let
      defs' = filterOverrides (concatMap (d: map (v: d // { value = v; }) (discharge d.value)) defs);
    in
    if defs' == [ ] then { isDefined = false; }
    else { isDefined = true; value = checkedMerge loc type defs'; };

  types = rec {
    anything = mkOptionType {
      name = "anything";
      merge = loc: defs:
        if all (d: isAttrs d.value && !(isDerivation d.value)) defs
        then mapAttrs (n: vs: (mergeDefinitions (loc ++ [ n ]) anything vs).value)
          (zipAttrs (map (d: mapAttrs (_: v: { inherit (d) file; value = v; }) d.value) defs))
        else if all (d: isList d.value) defs then concatMap (d: d.value) defs
        else mergeEqualOption loc defs;
    };
    unspecified = mkOptionType { name = "unspecified"; merge = loc: defs: if all (d: isList d.value) defs then concatMap (d: d.value) defs else mergeEqualOption loc defs; };
    raw = mkOptionType { name = "raw"; merge = mergeOneOption; };
    bool = mkOptionType { name = "bool"; description = "boolean"; check = isBool; };
    int = mkOptionType { name = "int"; description = "signed integer"; check = isInt; };
    float = mkOptionType { name = "float"; description = "floating point number"; check = isFloat; };
    port = addCheck int (p: p >= 0 && p <= 65535) // { description = "16 bit unsigned integer"; };
    str = mkOptionType { name = "str"; description = "string"; check = isString; };
    singleLineStr = addCheck str (s: builtins.match "[^\n]*\n?" s != null) // { description = "single line string"; };
    lines = mkOptionType {
      name = "lines";
      description = "strings concatenated with \"\\n\"";
      check = isString;
      merge = loc: defs: concatStringsSep "\n" (map (d: d.value) defs);
    };
    path = mkOptionType {
      name = "path";
      check = x: isPath x || (isString x && builtins.substring 0 1 x == "/")
        || (isAttrs x && x ? outPath);
      merge = mergeEqualOption;
    };
    package = mkOptionType {
      name = "package";
      check = x: isDerivation x || (isString x && builtins.substring 0 1 x == "/");
      merge = mergeOneOption;
    };
    attrs = mkOptionType {
      name = "attrs";
      description = "attribute set";
      check = isAttrs;
      merge = loc: defs: foldl' (acc: d: acc // d.value) { } defs;
    };
    enum = values: mkOptionType {
      name = "enum";
      description = "one of ${concatStringsSep ", " (map toJSON values)}";
      check = v: elem v values;
    };
    listOf = elemType: mkOptionType {
      name = "listOf";
      description = "list of ${elemType.description}";
      check = isList;
      merge = loc: defs: concatLists (map
        (d: builtins.genList
          (i:
            let r = mergeDefinitions (loc ++ [ "[definition ${d.file}, entry ${toString (i + 1)}]" ]) elemType
              [{ inherit (d) file; value = builtins.elemAt d.value i; }];
            in r.value)
          (length d.value))
        defs);
      nestedTypes.elemType = elemType;
    };
    attrsOf = elemType: mkOptionType {
      name = "attrsOf";
      description = "attribute set of ${elemType.description}";
      check = isAttrs;
      merge = loc: defs:
        let
          byName = zipAttrs (map (d: mapAttrs (_: v: { inherit (d) file; value = v; }) d.value)
            (concatMap (d: map (v: d // { value = v; }) (pushDown d.value)) defs));
          merged = mapAttrs (n: ds: mergeDefinitions (loc ++ [ n ]) elemType ds) byName;
        in
        mapAttrs (_: r: r.value) (builtins.removeAttrs merged (filter (n: !merged.${n}.isDefined) (attrNames merged)));
      nestedTypes.elemType = elemType;
    };
    lazyAttrsOf = attrsOf;
    nullOr = elemType: mkOptionType {
      name = "nullOr";
      description = "null or ${elemType.description}";
      check = x: x == null || elemType.check x;
      merge = loc: defs:
        if all (d: d.value == null) defs then null
        else if any (d: d.value == null) defs then
          throw "The option `${showOption loc}' is defined both null and not null:\n${defsText defs}"
        else elemType.merge loc defs;
      nestedTypes.elemType = elemType;
    };
    either = a: b: mkOptionType {
      name = "either";
      description = "${a.description} or ${b.description}";
      check = x: a.check x || b.check x;
      merge = loc: defs:
        if all (d: a.check d.value) defs then a.merge loc defs
        else if all (d: b.check d.value) defs then b.merge loc defs
        else mergeOneOption loc defs;
    };
    oneOf = ts:
      if ts == [ ] then throw "minilib: types.oneOf needs a type"
      else foldl' either (head ts) (tail ts);
    addCheck = t: extra: t // { check = x: t.check x && extra x; };
    submodule = module: submoduleWith { modules = [ module ]; };
    submoduleWith = { modules, specialArgs ? { } }: mkOptionType {
      name = "submodule";
      description = "submodule";
      check = x: isAttrs x || isFunction x || isPath x;
      merge = loc: defs:
        (evalModules {
          inherit specialArgs;
          prefix = loc;
          modules = modules
            ++ map (d: { _file = d.file; imports = [ d.value ]; }) defs;
        }).config;
    };
  };

  # --- evalModules --------------------------------------------------------

  # One module as { file; options; config; imports; }.
  normalize = file: args: m:
    let
      m1 = if isPath m then import m else m;
      file' = if isPath m then toString m else file;
      # A function gets the arguments it names (all of them when it
      # names none: `args: ...`), as nixpkgs passes them.
      wanted = builtins.functionArgs m1;
      m2 = if isFunction m1
        then m1 (if wanted == { } then args else builtins.intersectAttrs wanted args)
        else m1;
      structured = m2 ? options || m2 ? config;
      known = [ "_file" "key" "imports" "options" "config" "meta" "disabledModules" ];
      stray = filter (n: !(elem n known)) (attrNames m2);
    in
    if !(isAttrs m2) then throw "minilib: module in ${file'} is not an attribute set"
    else if structured && stray != [ ] then
      throw "Module `${file'}' has an unsupported attribute `${head stray}'. This is caused by introducing a top-level `config' or `options' attribute. Add configuration attributes immediately on the top level instead, or move all of them (namely: ${concatStringsSep " " stray}) into the explicit `config' attribute."
    else {
      file = m2._file or file';
      imports = m2.imports or [ ];
      options = m2.options or { };
      config =
        if structured then m2.config or { }
        else builtins.removeAttrs m2 [ "_file" "key" "imports" "meta" "disabledModules" ];
    };

  # Every module reachable through imports, each once (paths by name).
  collect = args: modules:
    let
      go = file: m:
        let n = normalize file args m; in
        [ n ] ++ concatMap (go n.file) n.imports;
    in
    concatMap (go "<unknown-file>") modules;

  # The declarations of all modules as one tree of options.
  mergeDeclarations = loc: decls:
    let
      opts = filter (d: isOption d.value) decls;
      sets = filter (d: !(isOption d.value)) decls;
    in
    if opts != [ ] then
      (if length opts > 1 then
        throw "The option `${showOption loc}' is declared more than once: ${concatStringsSep ", " (map (d: d.file) opts)}"
      else if sets != [ ] then
        throw "The option `${showOption loc}' in `${(head opts).file}' is a prefix of options in `${(head sets).file}'."
      else (head opts) // { isOptionDecl = true; })
    else
      mapAttrs (n: ds: mergeDeclarations (loc ++ [ n ]) ds)
        (zipAttrs (map (d: mapAttrs (_: v: { inherit (d) file; value = v; }) d.value) sets));

  # Walk the definitions along the option tree: every definition reaches
  # an option, or names one that does not exist.
  evalNode = loc: node: defs:
    if node.isOptionDecl or false then
      let
        opt = node.value;
        type = opt.type or types.unspecified;
        r = mergeDefinitions loc type defs;
        value =
          if r.isDefined then r.value
          else if opt ? default then opt.default
          else throw "The option `${showOption loc}' is used but not defined.";
        readOnlyOk = !(opt.readOnly or false) || length defs <= 1;
      in
      if !readOnlyOk then throw "The option `${showOption loc}' is read-only, but it's set multiple times."
      else if opt ? apply then opt.apply value else value
    else
      let
        pushed = concatMap (d: map (v: { inherit (d) file; value = v; }) (pushDown d.value)) defs;
        byName = zipAttrs (map (d: mapAttrs (_: v: { inherit (d) file; value = v; }) d.value) pushed);
        undeclared = filter (n: !(hasAttr n node)) (attrNames byName);
      in
      if undeclared != [ ] then
        let n = head undeclared; in
        throw "The option `${showOption (loc ++ [ n ])}' does not exist. Definition values:\n${defsText byName.${n}}"
      else mapAttrs (n: sub: evalNode (loc ++ [ n ]) sub (byName.${n} or [ ])) node;

  evalModules = { modules, specialArgs ? { }, prefix ? [ ] }:
    let
      # _module.args: the only built-in option (name for submodules).
      builtin = {
        _file = "minilib";
        options._module.args = mkOption { type = types.attrs; default = { }; };
      };
      args = {
        inherit config options lib;
        name = last ([ "<name>" ] ++ prefix);
      } // specialArgs;
      all' = collect args ([ builtin ] ++ modules);
      options = mergeDeclarations prefix (map (m: { inherit (m) file; value = m.options; }) all');
      config = evalNode prefix options (map (m: { inherit (m) file; value = m.config; }) all');
    in
    { inherit config options; };

  lib = {
    inherit optional optionals optionalAttrs optionalString genAttrs concatMap
      recursiveUpdate isDerivation isOption showOption
      mkIf mkMerge mkOverride mkDefault mkForce mkOptionDefault
      mkOption mkEnableOption mkOptionType literalExpression
      mergeEqualOption mergeOneOption types evalModules;
    inherit (builtins) attrNames attrValues concatStringsSep elem filter
      length map mapAttrs toJSON;
    last = last;
  };
in
lib
