/** Types of bin/compiled.js (plain JavaScript: bin/ runs before anything is compiled). */
export declare const SOURCE_DIRS: string[];
export declare const STAMP: string;
export declare const COMPILED_MAIN: string;
export declare function sourceState(root: string): { newest: number; files: number };
export declare function freshCompiledMain(root: string): string | undefined;
